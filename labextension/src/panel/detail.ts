/**
 * A job's detail view: a main-area tab holding the shared JobView (state, progress, metric
 * curves, log tail, a batch's results, timing, the allowed actions), plus the job's spec.
 */

import { MainAreaWidget } from '@jupyterlab/apputils';
import { listIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { Transport, jobPath } from '../api/transport';
import { labConfirm } from '../confirm';
import { Job, isRecord } from '../api/types';
import { h, replaceChildren, setText } from '../view/dom';
import { JobView } from '../view/JobView';

export class JobDetailContent extends Widget {
  readonly view: JobView;
  private readonly spec: HTMLElement;
  private readonly specSection: HTMLElement;

  /** Called with the job once it is read (the tab takes its name from it). */
  onJob: ((job: Job) => void) | null = null;

  constructor(
    private readonly transport: Transport,
    jobId: string,
    onRerun: (job: Job) => void
  ) {
    super();
    this.addClass('jobctl-detail');
    this.view = new JobView(transport, jobId, { onRerun, confirm: labConfirm });
    this.spec = h('pre', { class: 'jobctl-spec', attrs: { tabindex: '0', 'aria-label': 'Spec' } });
    this.specSection = h(
      'details',
      { class: 'jobctl-spec-section' },
      h('summary', { class: 'jobctl-section-title', text: 'Spec' }),
      this.spec
    );
    this.specSection.hidden = true;
    this.node.append(this.view.node, this.specSection);
    void this.loadSpec();
  }

  get jobId(): string {
    return this.view.jobId;
  }

  /** Show a job's spec (pretty JSON, as text). */
  showSpec(job: Pick<Job, 'spec'>): void {
    if (!isRecord(job.spec)) {
      return;
    }
    setText(this.spec, JSON.stringify(job.spec, null, 2));
    this.specSection.hidden = false;
  }

  private async loadSpec(): Promise<void> {
    try {
      const job = await this.transport.request<Job>('GET', jobPath(this.view.jobId));
      if (!this.isDisposed && isRecord(job)) {
        this.showSpec(job);
        this.onJob?.(job);
      }
    } catch {
      replaceChildren(this.spec);
      // the view itself says when the job does not exist
    }
  }

  override dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.view.dispose();
    super.dispose();
  }
}

export class JobDetailWidget extends MainAreaWidget<JobDetailContent> {
  constructor(transport: Transport, jobId: string, label: string, onRerun: (job: Job) => void) {
    const content = new JobDetailContent(transport, jobId, onRerun);
    super({ content });
    this.id = detailId(jobId);
    this.addClass('jobctl-detail-widget');
    this.title.icon = listIcon;
    this.title.closable = true;
    this.setLabel(label || jobId);
    content.onJob = job => this.setLabel(typeof job.name === 'string' ? job.name : '');
  }

  get jobId(): string {
    return this.content.jobId;
  }

  setLabel(label: string): void {
    const text = label || this.jobId;
    if (this.title.label !== text) {
      this.title.label = text;
      this.title.caption = `Job ${this.jobId}: ${text}`;
    }
  }
}

/** The DOM id of a job's detail tab. */
export function detailId(jobId: string): string {
  return `jobctl-detail-${jobId}`;
}
