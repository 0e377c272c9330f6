/**
 * The log tail: the newest lines, one text node each, following new output only while the
 * reader is at the bottom (scrolling up to read must not be yanked back down).
 */

import { h, replaceChildren, setText } from './dom';
import { JobModel, MAX_LOG_LINES } from './model';

const AT_BOTTOM_PX = 8;

export class LogTail {
  readonly node: HTMLElement;
  private readonly pre: HTMLElement;
  private readonly title: HTMLElement;
  private rendered = 0; // the model line number last rendered
  private epoch = -1;

  constructor() {
    this.title = h('div', { class: 'jobctl-section-title', text: 'Log' });
    this.pre = h('pre', {
      class: 'jobctl-log',
      attrs: { role: 'log', 'aria-label': 'Log', tabindex: '0' }
    });
    this.node = h('div', { class: 'jobctl-log-section' }, this.title, this.pre);
    this.node.hidden = true;
  }

  update(model: JobModel): void {
    if (model.epoch !== this.epoch) {
      this.epoch = model.epoch;
      this.rendered = 0;
      replaceChildren(this.pre);
    }
    if (model.logCount === this.rendered) {
      return;
    }
    const follow = this.atBottom();
    const fresh = model.logs.filter(l => l.n > this.rendered);
    const frag = document.createDocumentFragment();
    for (const l of fresh) {
      const span = document.createElement('span');
      span.className = `jobctl-log-line jobctl-log-${l.stream === 'stderr' || l.stream === 'jobctl' ? l.stream : 'stdout'}`;
      span.textContent = l.line + '\n';
      frag.appendChild(span);
    }
    this.pre.appendChild(frag);
    while (this.pre.childNodes.length > MAX_LOG_LINES && this.pre.firstChild) {
      this.pre.removeChild(this.pre.firstChild);
    }
    this.rendered = model.logCount;
    const hidden = model.logCount - model.logs.length;
    setText(
      this.title,
      hidden > 0 ? `Log (last ${model.logs.length} of ${model.logCount} lines)` : 'Log'
    );
    this.node.hidden = model.logCount === 0;
    if (follow) {
      this.pre.scrollTop = this.pre.scrollHeight;
    }
  }

  private atBottom(): boolean {
    const el = this.pre;
    return el.scrollHeight - el.scrollTop - el.clientHeight <= AT_BOTTOM_PX;
  }
}
