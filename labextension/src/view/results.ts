/**
 * A test batch's results: the counts, a filter by outcome, and the list with failures first
 * and their short failure message.
 */

import { Counts, OUTCOMES } from '../api/types';
import { h, replaceChildren, setText } from './dom';
import { formatCount, formatSeconds } from './format';
import { JobModel, ResultEntry } from './model';

/** Rows rendered at once; the rest are counted, not drawn (batches can have thousands). */
export const MAX_ROWS = 300;
const MESSAGE_CHARS = 400;

const RANK: Record<string, number> = { failed: 0, error: 1, xpassed: 2, skipped: 3, xfailed: 4, passed: 5 };

export const ALL = 'all';

/** Failures first, then in the order tests finished. */
export function sortResults(results: Iterable<ResultEntry>): ResultEntry[] {
  return [...results].sort((a, b) => (RANK[a.outcome] ?? 9) - (RANK[b.outcome] ?? 9) || a.seq - b.seq);
}

export function filterResults(results: ResultEntry[], outcome: string): ResultEntry[] {
  return outcome === ALL ? results : results.filter(r => r.outcome === outcome);
}

function shortMessage(message: string): string {
  const line = message.trim();
  return line.length > MESSAGE_CHARS ? line.slice(0, MESSAGE_CHARS - 1) + '…' : line;
}

export class ResultsView {
  readonly node: HTMLElement;
  private readonly counts: HTMLElement;
  private readonly filter: HTMLSelectElement;
  private readonly list: HTMLElement;
  private readonly more: HTMLElement;
  private readonly filterLabel: HTMLElement;
  private renderedVersion = -1;
  private renderedFilter = '';
  private renderedCounts = '';
  private model: JobModel | null = null;

  constructor() {
    this.counts = h('div', { class: 'jobctl-counts', attrs: { 'aria-label': 'Test counts' } });
    this.filter = h('select', {
      class: 'jobctl-filter',
      attrs: { 'aria-label': 'Filter by outcome', title: 'Filter by outcome' }
    });
    this.filter.addEventListener('change', () => this.model && this.update(this.model, null));
    this.list = h('ul', { class: 'jobctl-results', attrs: { 'aria-label': 'Test results' } });
    this.more = h('div', { class: 'jobctl-results-more' });
    this.filterLabel = h('label', { class: 'jobctl-filter-label' }, h('span', { text: 'Show' }), this.filter);
    const head = h(
      'div',
      { class: 'jobctl-results-head' },
      h('div', { class: 'jobctl-section-title', text: 'Tests' }),
      this.counts,
      this.filterLabel
    );
    this.node = h('div', { class: 'jobctl-results-section' }, head, this.list, this.more);
    this.node.hidden = true;
    this.setOptions(new Map());
  }

  update(model: JobModel, counts: Counts | null): void {
    this.model = model;
    if (counts) {
      this.renderCounts(counts);
    }
    const filter = this.filter.value || ALL;
    if (model.resultsVersion === this.renderedVersion && filter === this.renderedFilter) {
      return;
    }
    this.renderedVersion = model.resultsVersion;
    this.renderedFilter = filter;
    const all = sortResults(model.results.values());
    const byOutcome = new Map<string, number>();
    for (const r of all) {
      byOutcome.set(r.outcome, (byOutcome.get(r.outcome) ?? 0) + 1);
    }
    this.setOptions(byOutcome);
    const shown = filterResults(all, this.filter.value || ALL);
    replaceChildren(this.list, ...shown.slice(0, MAX_ROWS).map(r => this.row(r)));
    const hidden = shown.length - Math.min(shown.length, MAX_ROWS);
    setText(this.more, hidden > 0 ? `${formatCount(hidden)} more not shown` : '');
    this.more.hidden = hidden === 0;
    // nothing ran yet (collecting): no empty frame, no filter with nothing to filter
    this.list.hidden = all.length === 0;
    this.filterLabel.hidden = all.length === 0;
    if (!shown.length && all.length) {
      replaceChildren(this.list, h('li', { class: 'jobctl-result-empty', text: 'No tests with this outcome' }));
    }
  }

  private renderCounts(c: Counts): void {
    const sig = `${c.total}/${c.completed}/${c.passed}/${c.failed}/${c.skipped}`;
    if (sig === this.renderedCounts) {
      return;
    }
    this.renderedCounts = sig;
    const chip = (cls: string, label: string, n: number) =>
      h('span', { class: `jobctl-count jobctl-count-${cls}`, attrs: { 'data-jobctl-count': cls } },
        h('span', { class: 'jobctl-count-n', text: formatCount(n) }), ` ${label}`);
    // the spaces are for textContent and screen readers; flex layout ignores them
    replaceChildren(
      this.counts,
      chip('passed', 'passed', c.passed),
      ' ',
      chip('failed', 'failed', c.failed),
      ' ',
      chip('skipped', 'skipped', c.skipped),
      ' ',
      chip('total', c.completed < c.total ? `of ${formatCount(c.total)} run` : 'total',
        c.completed < c.total ? c.completed : c.total)
    );
  }

  /** Options keep the user's choice; each says how many tests it shows. */
  private setOptions(byOutcome: Map<string, number>): void {
    const current = this.filter.value || ALL;
    const total = [...byOutcome.values()].reduce((a, b) => a + b, 0);
    const options: [string, string][] = [[ALL, `All outcomes (${formatCount(total)})`]];
    for (const o of OUTCOMES) {
      const n = byOutcome.get(o) ?? 0;
      if (n > 0 || o === current) {
        options.push([o, `${o} (${formatCount(n)})`]);
      }
    }
    const sig = options.map(o => o.join('=')).join('|');
    if (this.filter.dataset.signature !== sig) {
      this.filter.dataset.signature = sig;
      replaceChildren(
        this.filter,
        ...options.map(([value, label]) => {
          const opt = h('option', { text: label });
          opt.value = value;
          return opt;
        })
      );
      this.filter.value = current;
    }
  }

  private row(r: ResultEntry): HTMLElement {
    const outcome = h('span', { class: `jobctl-outcome jobctl-outcome-${safeClass(r.outcome)}`, text: r.outcome });
    const id = h('span', { class: 'jobctl-nodeid', text: r.nodeid, title: r.nodeid });
    const dur = h('span', {
      class: 'jobctl-duration',
      text: r.duration !== undefined ? formatSeconds(r.duration) : ''
    });
    const li = h(
      'li',
      { class: 'jobctl-result', attrs: { 'data-jobctl-outcome': safeClass(r.outcome) } },
      h('div', { class: 'jobctl-result-line' }, outcome, id, dur)
    );
    if (r.message && r.outcome !== 'passed') {
      li.appendChild(h('div', { class: 'jobctl-result-message', text: shortMessage(r.message) }));
    }
    return li;
  }
}

/** Outcomes become class names: only known words, anything else is "other". */
function safeClass(outcome: string): string {
  return (OUTCOMES as readonly string[]).includes(outcome) ? outcome : 'other';
}
