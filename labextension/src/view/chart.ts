/**
 * Metric curves: one small uPlot chart, one series per numeric metric, plus a text legend
 * with each metric's latest value (the legend is ours, so it is text like everything else).
 *
 * Colours of axes and grid are read from the theme's CSS variables at draw time, so a
 * JupyterLab theme switch only needs a redraw.
 */

import uPlot from 'uplot';

import { h, replaceChildren } from './dom';
import { formatMetric } from './format';
import { JobModel } from './model';

/** Distinguishable on light and dark backgrounds. */
export const PALETTE = ['#1f77b4', '#e8710a', '#2ca02c', '#9467bd', '#d62728', '#17becf', '#bcbd22', '#e377c2'];

const HEIGHT = 150;

function cssVar(el: Element, name: string, fallback: string): string {
  const v = getComputedStyle(el).getPropertyValue(name).trim();
  return v || fallback;
}

export class MetricChart {
  readonly node: HTMLElement;
  private readonly legend: HTMLElement;
  private readonly plotHost: HTMLElement;
  private plot: uPlot | null = null;
  private plotted: string[] = [];
  private failed = false;
  private resize: ResizeObserver | null = null;
  private themeWatch: MutationObserver | null = null;
  private lastWidth = 0;

  constructor() {
    this.legend = h('div', { class: 'jobctl-metrics-legend', attrs: { 'aria-label': 'Latest metrics' } });
    this.plotHost = h('div', { class: 'jobctl-chart', attrs: { 'aria-hidden': 'true' } });
    this.node = h(
      'div',
      { class: 'jobctl-metrics' },
      h('div', { class: 'jobctl-section-title', text: 'Metrics' }),
      this.legend,
      this.plotHost
    );
    this.node.hidden = true;
  }

  update(model: JobModel, latest: Record<string, unknown>): void {
    const names = model.metricNames;
    this.renderLegend(names, model, latest);
    this.node.hidden = names.length === 0 && Object.keys(latest).length === 0;
    if (names.length === 0 || this.failed) {
      return;
    }
    const data: uPlot.AlignedData = [model.metricX, ...names.map(n => model.metricY.get(n) ?? [])];
    if (!this.plot || this.plotted.join('\u0000') !== names.join('\u0000')) {
      this.build(names, data);
    } else {
      this.plot.setData(data);
    }
  }

  dispose(): void {
    this.resize?.disconnect();
    this.themeWatch?.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }

  private renderLegend(names: string[], model: JobModel, latest: Record<string, unknown>): void {
    // curves' names first (with their colour), then non-numeric or never-plotted latest values
    const keys = [...names, ...Object.keys(latest).filter(k => !names.includes(k) && k !== 'step')];
    const signature = keys.map(k => `${k}=${formatMetric(latest[k] ?? lastValue(model, k))}`).join('\u0000');
    if (this.legend.dataset.signature === signature) {
      return;
    }
    this.legend.dataset.signature = signature;
    const items = keys.map((k, i) => {
      const value = formatMetric(latest[k] ?? lastValue(model, k));
      const swatch = h('span', { class: 'jobctl-swatch' });
      if (i < names.length) {
        swatch.style.background = PALETTE[i % PALETTE.length];
      } else {
        swatch.classList.add('jobctl-swatch-none');
      }
      const item = h(
        'span',
        { class: 'jobctl-metric' },
        swatch,
        h('span', { class: 'jobctl-metric-name', text: k }),
        h('span', { class: 'jobctl-metric-value', text: value })
      );
      return item;
    });
    replaceChildren(this.legend, ...items);
  }

  private build(names: string[], data: uPlot.AlignedData): void {
    this.plot?.destroy();
    this.plot = null;
    const host = this.plotHost;
    const axisColor = () => cssVar(host, '--jp-ui-font-color2', '#616161');
    const gridColor = () => cssVar(host, '--jp-border-color2', '#e0e0e0');
    const font = `10px ${cssVar(host, '--jp-ui-font-family', 'system-ui, sans-serif')}`;
    const axis = (): uPlot.Axis => ({
      stroke: axisColor,
      grid: { stroke: gridColor, width: 1 },
      ticks: { stroke: gridColor, width: 1, size: 4 },
      font,
      size: 36,
      gap: 3
    });
    const opts: uPlot.Options = {
      width: this.width(),
      height: HEIGHT,
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { size: 5 } },
      scales: { x: { time: false } },
      // steps are counts (epochs, batches): no `1.25` between epoch 1 and 2
      axes: [{ ...axis(), incrs: wholeSteps(data[0]) }, { ...axis(), size: 44 }],
      series: [
        { label: 'step' },
        ...names.map((name, i) => ({
          label: name,
          stroke: PALETTE[i % PALETTE.length],
          width: 1.5,
          points: { show: (u: uPlot) => (u.data[0]?.length ?? 0) < 16 },
          spanGaps: true
        }))
      ]
    };
    try {
      this.plot = new uPlot(opts, data, host);
      this.plotted = [...names];
    } catch (err) {
      // no canvas (a test DOM, a locked-down host): the legend still shows the values
      this.failed = true;
      console.warn('jobctl: metric chart unavailable', err);
      return;
    }
    this.watch();
  }

  private width(): number {
    const w = Math.floor(this.node.clientWidth || this.plotHost.clientWidth || 0);
    return Math.max(240, w || 480);
  }

  private watch(): void {
    if (!this.resize && typeof ResizeObserver === 'function') {
      this.resize = new ResizeObserver(() => {
        const w = this.width();
        if (this.plot && Math.abs(w - this.lastWidth) > 1) {
          this.lastWidth = w;
          this.plot.setSize({ width: w, height: HEIGHT });
        }
      });
      this.resize.observe(this.node);
    }
    if (!this.themeWatch && typeof MutationObserver === 'function' && document.body) {
      // JupyterLab flips these attributes when the theme changes: redraw with its colours
      this.themeWatch = new MutationObserver(() => this.plot?.redraw(false, true));
      this.themeWatch.observe(document.body, {
        attributes: true,
        attributeFilter: ['data-jp-theme-light', 'data-jp-theme-name']
      });
    }
  }
}

function lastValue(model: JobModel, name: string): number | null {
  const ys = model.metricY.get(name);
  if (!ys) {
    return null;
  }
  for (let i = ys.length - 1; i >= 0; i--) {
    const y = ys[i];
    if (y !== null) {
      return y;
    }
  }
  return null;
}

/** Tick increments of 1, 2, 5, 10, 20, 50, … when every step is a whole number; else uPlot's. */
export function wholeSteps(steps: ArrayLike<number | null | undefined>): number[] | undefined {
  for (let i = 0; i < steps.length; i++) {
    const s = steps[i];
    if (typeof s === 'number' && !Number.isInteger(s)) {
      return undefined;
    }
  }
  const incrs: number[] = [];
  for (let p = 1; p <= 1e12; p *= 10) {
    incrs.push(p, 2 * p, 5 * p);
  }
  return incrs;
}
