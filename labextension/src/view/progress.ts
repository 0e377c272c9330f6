/**
 * The progress bar: a filled track plus `done/total unit · rate · ETA` as text.
 */

import { Progress } from '../api/types';
import { h, setText } from './dom';
import { formatProgress } from './format';

export class ProgressBar {
  readonly node: HTMLElement;
  private readonly track: HTMLElement;
  private readonly fill: HTMLElement;
  private readonly label: HTMLElement;

  constructor() {
    this.fill = h('div', { class: 'jobctl-progress-fill' });
    this.track = h(
      'div',
      { class: 'jobctl-progress-track', attrs: { role: 'progressbar', 'aria-label': 'Progress' } },
      this.fill
    );
    this.label = h('span', { class: 'jobctl-progress-text' });
    this.node = h('div', { class: 'jobctl-progress' }, this.track, this.label);
  }

  update(progress: Progress, status: string, active: boolean): void {
    const { text, fraction } = formatProgress(progress, active);
    setText(this.label, text);
    this.node.hidden = !text && !active;
    const indeterminate = fraction === null && (status === 'initializing' || status === 'running');
    this.track.classList.toggle('jobctl-indeterminate', indeterminate);
    this.node.dataset.state = status;
    if (fraction === null) {
      this.fill.style.width = indeterminate ? '' : '0%';
      this.track.removeAttribute('aria-valuenow');
    } else {
      this.fill.style.width = `${(fraction * 100).toFixed(1)}%`;
      this.track.setAttribute('aria-valuemin', '0');
      this.track.setAttribute('aria-valuemax', '100');
      this.track.setAttribute('aria-valuenow', String(Math.round(fraction * 100)));
    }
    if (text) {
      this.track.setAttribute('aria-valuetext', text);
    }
  }
}
