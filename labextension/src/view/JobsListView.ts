/**
 * A live list of active jobs (for `JobsWidget` and `{"view": "jobs"}` outputs): the active
 * jobs from `GET jobs`, kept current by `WS stream`; a job that finishes while shown stays,
 * with its final state, so the user sees how it ended. Each row opens the job's JobView:
 * through `onOpen` when the host has somewhere to put it (the side panel: a tab), otherwise
 * in place, with a way back to the list.
 */

import { Emitter } from '../api/emitter';
import { ListStream, StreamOptions } from '../api/stream';
import { Transport, errorMessage } from '../api/transport';
import { Job, JobList, isTerminal } from '../api/types';
import { h, replaceChildren, setText } from './dom';
import { formatCount, formatProgress } from './format';
import { JobView, JobViewOptions } from './JobView';
import { RenderQueue, Schedule, nextFrame } from './render';

export const ACTIVE_STATES = ['pending', 'initializing', 'running', 'paused', 'stopping'];
const LIST_LIMIT = 200;

/** The list's data: jobs by id, newest first. No DOM, so the side panel can reuse it. */
export class ActiveJobsModel {
  readonly changed = new Emitter<void>();
  private readonly jobs = new Map<string, Job>();

  /** Jobs to show, newest first. */
  get items(): Job[] {
    return [...this.jobs.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0));
  }

  get size(): number {
    return this.jobs.size;
  }

  /** A fresh listing of active jobs: those gone from it and terminal stay (they just finished). */
  replace(active: Job[]): void {
    const fresh = new Set(active.map(j => j.id));
    for (const [id, job] of this.jobs) {
      if (!fresh.has(id) && !isTerminal(job.status)) {
        this.jobs.delete(id); // it ended while we were away; we don't know how
      }
    }
    for (const job of active) {
      this.upsert(job, false);
    }
    this.changed.emit();
  }

  /** A summary from the stream. New jobs appear only while active. */
  update(job: Job): void {
    if (this.upsert(job, true)) {
      this.changed.emit();
    }
  }

  remove(id: string): void {
    if (this.jobs.delete(id)) {
      this.changed.emit();
    }
  }

  private upsert(job: Job, fromStream: boolean): boolean {
    const known = this.jobs.get(job.id);
    if (!known && fromStream && isTerminal(job.status)) {
      return false; // finished elsewhere, never shown here: not "active"
    }
    if (known && known.last_seq > job.last_seq) {
      return false; // older news
    }
    this.jobs.set(job.id, job);
    return true;
  }
}

export interface JobsListViewOptions {
  /** Open a job somewhere else (a tab). Without it, the job view opens in place. */
  onOpen?: (jobId: string) => void;
  stream?: StreamOptions;
  schedule?: Schedule;
  /** Options for the in-place JobView. */
  jobView?: JobViewOptions;
}

export class JobsListView {
  readonly node: HTMLElement;
  readonly model = new ActiveJobsModel();
  private readonly stream: ListStream;
  private readonly list: HTMLElement;
  private readonly status: HTMLElement;
  private readonly conn: HTMLElement;
  private readonly listPane: HTMLElement;
  private readonly detailPane: HTMLElement;
  private detail: JobView | null = null;
  private rows = new Map<string, Row>();
  private disposed = false;
  private listing = 0;
  private error = '';
  private loaded = false;
  private readonly renders: RenderQueue;

  constructor(
    private readonly transport: Transport,
    private readonly options: JobsListViewOptions = {}
  ) {
    this.renders = new RenderQueue(options.schedule ?? nextFrame, () => this.render(), () => !this.disposed);
    this.status = h('span', { class: 'jobctl-list-status' });
    this.conn = h('span', { class: 'jobctl-conn', attrs: { role: 'status' } });
    this.conn.hidden = true;
    this.list = h('ul', { class: 'jobctl-list', attrs: { 'aria-label': 'Active jobs' } });
    this.listPane = h(
      'div',
      { class: 'jobctl-list-pane' },
      h('div', { class: 'jobctl-header' }, h('span', { class: 'jobctl-name', text: 'Active jobs' }), this.status, this.conn),
      this.list
    );
    this.detailPane = h('div', { class: 'jobctl-detail-pane' });
    this.detailPane.hidden = true;
    this.node = h('div', { class: 'jobctl-jobs' }, this.listPane, this.detailPane);

    this.model.changed.connect(() => this.requestRender());
    this.stream = new ListStream(transport, options.stream);
    this.stream.job.connect(job => this.model.update(job));
    this.stream.deleted.connect(id => this.model.remove(id));
    this.stream.opened.connect(() => void this.relist()); // nothing is replayed: look again
    this.stream.stateChanged.connect(() => this.requestRender());
    void this.relist();
    this.stream.start();
  }

  dispose(): void {
    if (this.disposed) {
      return;
    }
    this.disposed = true;
    this.stream.close();
    this.detail?.dispose();
    this.model.changed.clear();
  }

  /** Show one job in place of the list. */
  openJob(jobId: string): void {
    if (this.options.onOpen) {
      this.options.onOpen(jobId);
      return;
    }
    this.detail?.dispose();
    this.detail = new JobView(this.transport, jobId, this.options.jobView);
    const back = h('button', { class: 'jobctl-button jobctl-back', text: '← All jobs', attrs: { type: 'button' } });
    back.addEventListener('click', () => this.closeJob());
    replaceChildren(this.detailPane, back, this.detail.node);
    this.detailPane.hidden = false;
    this.listPane.hidden = true;
  }

  closeJob(): void {
    this.detail?.dispose();
    this.detail = null;
    replaceChildren(this.detailPane);
    this.detailPane.hidden = true;
    this.listPane.hidden = false;
  }

  private async relist(): Promise<void> {
    const n = ++this.listing;
    try {
      const page = await this.transport.request<JobList>('GET', `jobs?status=${ACTIVE_STATES.join(',')}&limit=${LIST_LIMIT}`);
      if (n !== this.listing || this.disposed) {
        return;
      }
      this.error = '';
      this.loaded = true;
      this.model.replace(Array.isArray(page?.jobs) ? page.jobs : []);
    } catch (err) {
      if (n === this.listing && !this.disposed) {
        this.error = errorMessage(err);
        this.requestRender();
      }
    }
  }

  private requestRender(): void {
    this.renders.request();
  }

  private render(): void {
    const down = this.stream.reconnecting;
    this.conn.hidden = !down;
    setText(this.conn, down ? 'Reconnecting…' : '');
    const items = this.model.items;
    const active = items.filter(j => !isTerminal(j.status)).length;
    setText(this.status, this.error || (this.loaded ? `${formatCount(active)} running or waiting` : 'Loading…'));
    this.status.classList.toggle('jobctl-error-text', !!this.error);
    if (!items.length) {
      this.rows.clear();
      replaceChildren(this.list, h('li', { class: 'jobctl-list-empty', text: this.loaded ? 'No active jobs.' : '' }));
      return;
    }
    // keyed rows, updated in place: focus and hover survive the many updates a second
    const next = new Map<string, Row>();
    for (const job of items) {
      const row = this.rows.get(job.id) ?? this.row(job.id);
      row.update(job);
      next.set(job.id, row);
    }
    this.rows = next;
    const wanted = items.map(j => next.get(j.id)!.node);
    const current = Array.from(this.list.children);
    if (current.length !== wanted.length || current.some((el, i) => el !== wanted[i])) {
      replaceChildren(this.list, ...wanted);
    }
  }

  private row(jobId: string): Row {
    return new Row(jobId, () => this.openJob(jobId));
  }
}

/** One job's row: badge, name (the button that opens it), kind, progress or counts. */
class Row {
  readonly node: HTMLElement;
  private readonly badge: HTMLElement;
  private readonly open: HTMLButtonElement;
  private readonly kind: HTMLElement;
  private readonly summary: HTMLElement;

  constructor(jobId: string, onOpen: () => void) {
    this.badge = h('span', { class: 'jobctl-badge' });
    this.open = h('button', { class: 'jobctl-row-open', attrs: { type: 'button' } });
    this.open.addEventListener('click', onOpen);
    this.kind = h('span', { class: 'jobctl-kind' });
    this.summary = h('span', { class: 'jobctl-row-summary' });
    this.node = h('li', { class: 'jobctl-row', attrs: { 'data-jobctl-job': jobId } }, this.badge, this.open, this.kind, this.summary);
  }

  update(job: Job): void {
    const active = !isTerminal(job.status);
    setText(this.badge, job.status);
    this.badge.setAttribute('data-jobctl-status', job.status);
    this.node.dataset.state = job.status;
    setText(this.open, job.name || job.id);
    this.open.title = `Open ${job.name || job.id}`;
    setText(this.kind, job.kind);
    const c = job.counts;
    const summary =
      job.kind === 'test_batch' && c
        ? `${formatCount(c.passed)} passed · ${formatCount(c.failed)} failed` +
          (c.total ? ` · ${formatCount(c.completed)}/${formatCount(c.total)}` : '')
        : formatProgress(job.progress, active).text;
    setText(this.summary, summary);
  }
}
