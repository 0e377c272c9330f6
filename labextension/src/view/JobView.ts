/**
 * The job view (docs/architecture.md): state badge, progress with rate and ETA, metric curves, log
 * tail, a batch's results, and the actions allowed in the current state. Host-agnostic: a
 * Transport and a job id in, a DOM node out; JupyterLab wraps it in a Lumino widget, the
 * anywidget ESM puts it into its element.
 *
 * DOM contract (browser tests rely on it): root `.jobctl-job[data-jobctl-job=<id>]`; the
 * badge's text is the state name and it carries `data-jobctl-status`; buttons are named
 * Stop / Pause / Resume / Delete / Rerun failed / Start and exist only when allowed; an
 * action in flight disables its button and says e.g. `Stopping…`; `Reconnecting…` while
 * the stream is down.
 */

import { Clock, TimerHandle, realClock } from '../api/clock';
import { Emitter } from '../api/emitter';
import { JobStream, JobStreamOptions, StreamState } from '../api/stream';
import { ApiError, Transport, errorMessage, isApiError, jobPath } from '../api/transport';
import { Job, isRecord, isTerminal } from '../api/types';
import { ACTIONS, ActionName, Confirm, allowedActions, questionFor } from './actions';
import { MetricChart } from './chart';
import { h, replaceChildren, setText } from './dom';
import { pathOpener, relativeToRoot } from './files';
import { formatClock, formatDuration, parseTime } from './format';
import { LogTail } from './log';
import { JobModel } from './model';
import { ProgressBar } from './progress';
import { inlineConfirm } from './question';
import { RenderQueue, Schedule, nextFrame } from './render';
import { ResultsView } from './results';

export interface JobViewOptions {
  /**
   * Called with the new job after `Rerun failed`. Without it the view itself switches to
   * the new job (a notebook output shows one job at a time, the newest).
   */
  onRerun?: (job: Job) => void;
  /** Options of the underlying JobStream (clock, backoff, timeouts). */
  stream?: JobStreamOptions;
  clock?: Clock;
  /** How renders are batched; default: the next animation frame. Tests pass `f => f()`. */
  schedule?: Schedule;
  /** Draw metric curves (default true). */
  chart?: boolean;
  /** Asks before an action that cannot be undone (Delete); default: inside the view. */
  confirm?: Confirm;
}

type NoticeKind = 'busy' | 'ok' | 'error';

/** Which state an accepted action is waiting for (its notice then gives way). */
const ACTION_TARGET: Partial<Record<ActionName, (status: string) => boolean>> = {
  start: s => s === 'running' || isTerminal(s),
  pause: s => s === 'paused' || isTerminal(s),
  resume: s => s === 'running' || isTerminal(s),
  stop: s => isTerminal(s)
};

export class JobView {
  readonly node: HTMLElement;
  /** Fires with the job id whenever the view switches to another job (rerun). */
  readonly jobChanged = new Emitter<string>();

  private _jobId: string;
  private readonly transport: Transport;
  private readonly options: JobViewOptions;
  private readonly clock: Clock;
  private readonly renders: RenderQueue;
  private readonly questionSlot: HTMLElement;
  private readonly confirm: Confirm;
  private model = new JobModel();
  private stream: JobStream | null = null;
  private disconnectors: (() => void)[] = [];
  private disposed = false;
  private gone = false;
  private inFlight: ActionName | null = null;
  private awaiting: ActionName | null = null;
  private tick: TimerHandle | null = null;

  // parts
  private readonly badge: HTMLElement;
  private readonly title: HTMLElement;
  private readonly kind: HTMLElement;
  private readonly conn: HTMLElement;
  private readonly actions: HTMLElement;
  private readonly notice: HTMLElement;
  private readonly meta: HTMLElement;
  private readonly reason: HTMLElement;
  private readonly copy: HTMLElement;
  private readonly progress = new ProgressBar();
  private readonly chart: MetricChart | null;
  private readonly log = new LogTail();
  private readonly results = new ResultsView();
  private readonly body: HTMLElement;
  private readonly placeholder: HTMLElement;
  private buttons = new Map<ActionName, HTMLButtonElement>();

  constructor(transport: Transport, jobId: string, options: JobViewOptions = {}) {
    this.transport = transport;
    this._jobId = jobId;
    this.options = options;
    this.clock = options.clock ?? options.stream?.clock ?? realClock;
    this.renders = new RenderQueue(options.schedule ?? nextFrame, () => this.render(), () => !this.disposed);
    this.chart = options.chart === false ? null : new MetricChart();

    this.badge = h('span', { class: 'jobctl-badge', attrs: { 'data-jobctl-status': '' } });
    this.title = h('span', { class: 'jobctl-name' });
    this.kind = h('span', { class: 'jobctl-kind' });
    this.conn = h('span', { class: 'jobctl-conn', attrs: { role: 'status' } });
    this.conn.hidden = true;
    this.actions = h('div', { class: 'jobctl-actions', attrs: { role: 'group', 'aria-label': 'Job actions' } });
    this.notice = h('div', { class: 'jobctl-notice', attrs: { 'aria-live': 'polite' } });
    this.questionSlot = h('div', { class: 'jobctl-question-slot' });
    this.confirm = options.confirm ?? inlineConfirm(this.questionSlot);
    this.notice.hidden = true;
    this.meta = h('div', { class: 'jobctl-meta' });
    this.reason = h('div', { class: 'jobctl-reason' });
    this.reason.hidden = true;
    this.copy = h('div', { class: 'jobctl-copy' });
    this.copy.hidden = true;
    this.placeholder = h('div', { class: 'jobctl-placeholder' });

    const header = h(
      'div',
      { class: 'jobctl-header' },
      this.badge,
      h('div', { class: 'jobctl-heading' }, this.title, this.kind),
      this.conn,
      this.actions
    );
    this.body = h(
      'div',
      { class: 'jobctl-body' },
      this.progress.node,
      this.meta,
      this.reason,
      this.copy,
      this.chart?.node,
      this.results.node,
      this.log.node
    );
    this.node = h('div', { class: 'jobctl-job', attrs: { 'data-jobctl-job': jobId } }, header, this.questionSlot, this.notice, this.placeholder, this.body);
    this.open();
  }

  get jobId(): string {
    return this._jobId;
  }

  /** The job as the view currently knows it (null until its first snapshot). */
  get job(): Job | null {
    return this.model.job;
  }

  get streamState(): StreamState | null {
    return this.stream?.state ?? null;
  }

  /** Show another job in this view (e.g. the rerun it just started). */
  setJob(jobId: string): void {
    if (jobId === this._jobId || this.disposed) {
      return;
    }
    this.close();
    this._jobId = jobId;
    this.node.setAttribute('data-jobctl-job', jobId);
    this.model = new JobModel();
    this.gone = false;
    this.awaiting = null;
    this.open();
    this.jobChanged.emit(jobId);
  }

  dispose(): void {
    if (this.disposed) {
      return;
    }
    this.disposed = true;
    this.close();
    this.chart?.dispose();
    this.jobChanged.clear();
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  // ---- stream

  private open(): void {
    const stream = new JobStream(this.transport, this._jobId, { clock: this.clock, ...this.options.stream });
    this.stream = stream;
    this.disconnectors = [
      stream.snapshot.connect(({ job }) => {
        this.model.applySnapshot(job);
        this.requestRender();
      }),
      stream.event.connect(ev => {
        const before = this.model.job?.status;
        this.model.applyEvent(ev);
        const after = this.model.job?.status;
        if (after && after !== before) {
          this.statusChanged(after);
        }
        this.requestRender();
      }),
      stream.reset.connect(() => {
        this.model.clear(); // the fresh snapshot and replay rebuild everything
        this.requestRender();
      }),
      stream.done.connect(() => {
        // the terminal row has fields no event carries (finished_at, exit code, reason)
        void this.refresh();
      }),
      stream.stateChanged.connect(state => {
        if (state === 'gone') {
          this.gone = true;
        }
        this.requestRender();
      })
    ];
    this.setNotice('', 'ok');
    this.requestRender();
    stream.start();
  }

  private close(): void {
    for (const d of this.disconnectors) {
      d();
    }
    this.disconnectors = [];
    this.stream?.close();
    this.stream = null;
    this.stopTick();
  }

  /** Re-read the job's state from the API (after a timeout, a conflict, the end). */
  private async refresh(): Promise<void> {
    const jobId = this._jobId;
    try {
      const job = await this.transport.request<Job>('GET', jobPath(jobId));
      if (jobId !== this._jobId || this.disposed || !isRecord(job)) {
        return;
      }
      const before = this.model.job?.status;
      this.model.applyJob(job);
      if (this.model.job && this.model.job.status !== before) {
        this.statusChanged(this.model.job.status);
      }
    } catch (err) {
      if (jobId !== this._jobId || this.disposed) {
        return;
      }
      if (isApiError(err) && err.status === 404) {
        this.gone = true;
        this.stream?.close();
      }
    }
    this.requestRender();
  }

  private statusChanged(status: string): void {
    if (this.awaiting && !this.inFlight) {
      const reached = ACTION_TARGET[this.awaiting];
      if (reached && reached(status)) {
        this.awaiting = null;
        if (isTerminal(status)) {
          this.setNotice(`Job ${status}`, 'ok');
        } else {
          this.setNotice('', 'ok');
        }
      }
    }
  }

  // ---- actions

  private async run(action: ActionName): Promise<void> {
    if (this.inFlight || this.disposed) {
      return;
    }
    const spec = ACTIONS[action];
    const jobId = this._jobId;
    this.inFlight = action; // also while a question is open: one action at a time
    const question = questionFor(action, this.model.job?.name || jobId);
    if (question) {
      const yes = await this.confirm(question);
      if (!yes || this.disposed || jobId !== this._jobId) {
        this.inFlight = null;
        return;
      }
    }
    this.awaiting = null;
    this.setNotice(spec.busy, 'busy');
    this.renderActions();
    let result: unknown;
    let failure: unknown = null;
    try {
      result = await this.transport.request<unknown>(spec.method, spec.path(jobId), spec.body);
    } catch (err) {
      failure = err;
    }
    this.inFlight = null;
    if (this.disposed || jobId !== this._jobId) {
      return;
    }
    if (failure !== null) {
      this.setNotice(errorMessage(failure), 'error');
      const err = failure as ApiError;
      // we don't know (timeout) or were wrong (409: its state moved on): look again
      if (!isApiError(err) || err.timeout || err.status === 409 || err.status === 0) {
        void this.refresh();
      } else if (err.status === 404) {
        this.gone = true;
        this.stream?.close();
      }
      this.requestRender();
      return;
    }
    if (action === 'delete') {
      this.gone = true;
      this.stream?.close();
      this.setNotice(spec.accepted, 'ok');
      this.requestRender();
      return;
    }
    if (action === 'rerun_failed') {
      this.setNotice(spec.accepted, 'ok');
      if (isRecord(result) && typeof result.id === 'string') {
        const job = result as unknown as Job;
        if (this.options.onRerun) {
          this.options.onRerun(job);
        } else {
          this.setJob(job.id);
          this.setNotice(`Rerun of the failed tests of ${jobId}`, 'ok');
        }
      }
      this.requestRender();
      return;
    }
    if (isRecord(result) && typeof result.status === 'string') {
      this.model.applyJob(result as unknown as Job);
    }
    const status = this.model.job?.status ?? '';
    const reached = ACTION_TARGET[action];
    if (reached && reached(status) && isTerminal(status)) {
      this.setNotice(`${spec.accepted}: job ${status}`, 'ok'); // e.g. a pending job cancels at once
    } else {
      this.setNotice(spec.accepted, 'ok');
      this.awaiting = action;
    }
    this.requestRender();
  }

  private setNotice(text: string, kind: NoticeKind): void {
    setText(this.notice, text);
    this.notice.hidden = !text;
    this.notice.dataset.kind = kind;
    this.notice.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  }

  // ---- rendering

  private requestRender(): void {
    this.renders.request();
  }

  private render(): void {
    const job = this.model.job;
    this.renderConnection();
    if (!job) {
      setText(this.placeholder, this.gone ? `Job ${this._jobId} does not exist (it may have been deleted).` : `Loading job ${this._jobId}…`);
      this.placeholder.hidden = false;
      this.body.hidden = true;
      setText(this.badge, this.gone ? 'not found' : '…');
      this.badge.setAttribute('data-jobctl-status', '');
      setText(this.title, '');
      setText(this.kind, '');
      this.renderActions();
      return;
    }
    this.placeholder.hidden = !this.gone;
    setText(this.placeholder, this.gone ? 'This job no longer exists on the server.' : '');
    this.body.hidden = false;
    const status = job.status;
    const active = !isTerminal(status);
    setText(this.badge, status);
    this.badge.setAttribute('data-jobctl-status', status);
    this.node.dataset.state = status; // styling only: data-jobctl-status belongs to the badge
    setText(this.title, job.name || job.id);
    this.title.title = job.name || job.id;
    setText(this.kind, job.kind);
    this.progress.update(job.progress, status, active);
    this.renderMeta(job);
    // a finished job's reason says how it ended; an initializing one's why it waits
    // (queued on a Dask cluster); a running job's is not final yet
    if (job.reason && (!active || status === 'initializing')) {
      setText(this.reason, job.reason);
      this.reason.hidden = false;
    } else {
      this.reason.hidden = true;
    }
    this.renderCopy(job);
    const isBatch = job.kind === 'test_batch';
    this.results.node.hidden = !isBatch;
    if (isBatch) {
      this.results.update(this.model, job.counts);
    }
    this.chart?.update(this.model, isBatch ? {} : job.metrics);
    this.log.update(this.model);
    this.renderActions();
    if (active && job.started_at) {
      this.startTick();
    } else {
      this.stopTick();
    }
  }

  /** A notebook job's executed copy: its path, and an Open button where the host can. */
  private renderCopy(job: Job): void {
    const path = typeof job.output_path === 'string' ? job.output_path : '';
    const open = pathOpener();
    const relative = path ? relativeToRoot(path) : null;
    const sig = `${path}|${open && relative !== null ? relative : ''}`;
    this.copy.hidden = !path;
    if (this.copy.dataset.signature === sig) {
      return;
    }
    this.copy.dataset.signature = sig;
    const parts = [h('span', { class: 'jobctl-copy-label', text: 'Executed copy: ' }), h('span', { class: 'jobctl-copy-path', text: relative ?? path, title: path })];
    if (open && relative !== null) {
      const button = h('button', { class: 'jobctl-button jobctl-copy-open', text: 'Open', attrs: { type: 'button', 'aria-label': 'Open the executed copy' } });
      button.addEventListener('click', () => open(relative));
      parts.push(button);
    }
    replaceChildren(this.copy, ...parts);
  }

  private renderConnection(): void {
    const state = this.stream?.state;
    const down = state === 'reconnecting' && !this.gone;
    this.conn.hidden = !down;
    setText(this.conn, down ? 'Reconnecting…' : '');
    this.node.classList.toggle('jobctl-offline', down);
  }

  private renderMeta(job: Job): void {
    const now = this.clock.now();
    const parts: (string | HTMLElement)[] = [];
    const started = parseTime(job.started_at);
    const finished = parseTime(job.finished_at);
    parts.push(h('span', { class: 'jobctl-id', text: job.id, title: 'Job id' }));
    if (started !== null) {
      parts.push(`started ${formatClock(started, now)}`);
      const end = finished ?? (isTerminal(job.status) ? null : now);
      if (end !== null) {
        parts.push(`${finished !== null ? 'took' : 'running for'} ${formatDuration(Math.max(0, (end - started) / 1000))}`);
      }
    } else {
      const created = parseTime(job.created_at);
      if (created !== null) {
        parts.push(`created ${formatClock(created, now)}`);
      }
    }
    if (finished !== null) {
      parts.push(`finished ${formatClock(finished, now)}`);
    }
    if (job.attempt > 1) {
      parts.push(`attempt ${job.attempt}`);
    }
    if (typeof job.exit_code === 'number') {
      parts.push(`exit code ${job.exit_code}`);
    }
    if (job.signal) {
      parts.push(`signal ${job.signal}`);
    }
    const items: (string | HTMLElement)[] = [];
    parts.forEach((p, i) => {
      if (i > 0) {
        items.push(h('span', { class: 'jobctl-sep', text: ' · ' }));
      }
      items.push(typeof p === 'string' ? h('span', { text: p }) : p);
    });
    const sig = parts.map(p => (typeof p === 'string' ? p : p.textContent)).join('|');
    if (this.meta.dataset.signature !== sig) {
      this.meta.dataset.signature = sig;
      replaceChildren(this.meta, ...items);
    }
  }

  private renderActions(): void {
    const job = this.model.job;
    const allowed = job && !this.gone ? allowedActions(job) : [];
    // an action in flight keeps its (disabled) button even if the state moved on meanwhile
    if (this.inFlight && !allowed.includes(this.inFlight)) {
      allowed.push(this.inFlight);
    }
    const sig = allowed.join(',');
    if (this.actions.dataset.signature !== sig) {
      this.actions.dataset.signature = sig;
      const buttons = new Map<ActionName, HTMLButtonElement>();
      for (const name of allowed) {
        buttons.set(name, this.buttons.get(name) ?? this.button(name));
      }
      this.buttons = buttons;
      replaceChildren(this.actions, ...buttons.values());
    }
    for (const [name, button] of this.buttons) {
      button.disabled = this.inFlight !== null;
      button.setAttribute('aria-busy', String(this.inFlight === name));
    }
  }

  private button(name: ActionName): HTMLButtonElement {
    const spec = ACTIONS[name];
    const b = h('button', {
      class: `jobctl-button jobctl-action-${name.replace('_', '-')}${spec.danger ? ' jobctl-danger' : ''}`,
      text: spec.label,
      attrs: { type: 'button', 'data-jobctl-action': name }
    });
    b.addEventListener('click', () => void this.run(name));
    return b;
  }

  private startTick(): void {
    if (this.tick !== null) {
      return;
    }
    const loop = () => {
      this.tick = this.clock.setTimeout(() => {
        this.tick = null;
        const job = this.model.job;
        if (!this.disposed && job && !isTerminal(job.status)) {
          this.renderMeta(job);
          loop();
        }
      }, 1000);
    };
    loop();
  }

  private stopTick(): void {
    if (this.tick !== null) {
      this.clock.clearTimeout(this.tick);
      this.tick = null;
    }
  }
}
