/**
 * Mounts the view a target asks for into an element: the one piece both hosts (the
 * JupyterLab renderer and the anywidget) share, so they behave the same.
 */

import { Transport } from './api/transport';
import { Confirm } from './view/actions';
import { h } from './view/dom';
import { JobView } from './view/JobView';
import { JobsListView } from './view/JobsListView';
import { ViewTarget, sameTarget } from './target';

export class ViewHost {
  private target: ViewTarget | null = null;
  private view: JobView | JobsListView | null = null;

  constructor(
    private readonly el: HTMLElement,
    private readonly transport: Transport,
    /** How the host asks before Delete (JupyterLab's dialog; else a question in the view). */
    private readonly confirm?: Confirm
  ) {}

  show(target: ViewTarget): void {
    if (sameTarget(this.target, target)) {
      return; // a re-render with the same data keeps the live view (and its socket)
    }
    this.clear();
    this.target = target;
    let node: HTMLElement;
    if (target.kind === 'job') {
      // compared with what was asked, not what is shown: after a rerun switched the view to
      // the new job, a re-render of the same output keeps it there
      const view = new JobView(this.transport, target.jobId, { confirm: this.confirm });
      this.view = view;
      node = view.node;
    } else if (target.kind === 'jobs') {
      const view = new JobsListView(this.transport);
      this.view = view;
      node = view.node;
    } else {
      node = h('div', { class: 'jobctl-job jobctl-invalid', attrs: { role: 'alert' } }, h('span', { class: 'jobctl-error-text', text: target.message }));
    }
    this.el.appendChild(node);
  }

  dispose(): void {
    this.clear();
  }

  private clear(): void {
    this.view?.dispose();
    this.view = null;
    this.target = null;
    while (this.el.firstChild) {
      this.el.removeChild(this.el.firstChild);
    }
  }
}
