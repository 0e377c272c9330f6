/**
 * The jobs panel (left area, `data-id="jobctl-panel"`): every job and test batch, live.
 *
 *   Jobs                                  [New training job] [New test batch]
 *   (Reconnecting…)   (Restored 2 running test batch(es))
 *   [form, when one is open]
 *   [Filter by state ▾] [Filter by kind ▾] [Search jobs……………]
 *   12 jobs
 *   ┌ virtualised rows (row.ts) ┐
 *   └───────────────────────────┘
 *   <live region: the last action's outcome, in full>
 *
 * Data: JobListModel (GET /jobs pages + WS /stream via the stream module's ListStream,
 * which reconnects with backoff and jitter); actions: ActionRunner; notifications:
 * EndNotifier. Everything user-supplied is rendered as text.
 */

import { Widget } from '@lumino/widgets';
import { Message } from '@lumino/messaging';

import { Clock, TimerHandle, realClock } from '../api/clock';
import { Emitter } from '../api/emitter';
import { ListStream, StreamOptions } from '../api/stream';
import { Transport, errorMessage } from '../api/transport';
import { JOB_KINDS, JOB_STATES, Job, isRecord, isTerminal } from '../api/types';
import { ActionName, Confirm, questionFor } from '../view/actions';
import { h, replaceChildren, setText } from '../view/dom';
import { formatCount } from '../view/format';
import { FormKind, JobForm } from './forms';
import {
  ACTIVE_STATES,
  JobListModel,
  KIND_ALL,
  ListModelOptions,
  STATE_ACTIVE,
  STATE_ALL,
  Transition,
  asJob,
  queryString
} from './listmodel';
import { ROW_HEIGHT, createRow, renderRow } from './row';
import { ActionRunner } from './runner';
import { VirtualList } from './virtual';

export const PANEL_ID = 'jobctl-panel';

export function restoredMessage(n: number): string {
  return `Restored ${n} running test batch(es)`;
}

const KIND_LABELS: Record<string, string> = {
  training: 'Training',
  test_batch: 'Test batch',
  command: 'Command'
};

/** A batch of GET /batches/active that counts as running work (not merely waiting). */
function isRunningBatch(b: unknown): boolean {
  return isRecord(b) && typeof b.batch_id === 'string' && typeof b.status === 'string' && b.status !== 'pending' && !isTerminal(b.status);
}

export interface JobsPanelOptions {
  transport: Transport;
  /** Open a job's detail view. */
  open(jobId: string): void;
  /** Announce something worth a notification (restored work, a created job). */
  announce?(message: string, type: 'info' | 'success' | 'error'): void;
  clock?: Clock;
  /** Asks before an action that cannot be undone (Delete): JupyterLab's dialog. */
  confirm: Confirm;
  stream?: StreamOptions;
  /** A ListStream stand-in (tests). */
  makeStream?: (transport: Transport) => ListStream;
  model?: ListModelOptions;
}

export class JobsPanel extends Widget {
  readonly model: JobListModel;
  readonly runner: ActionRunner;
  /** Every job transition the list sees (the plugin's notifier listens). */
  readonly transitions = new Emitter<Transition>();
  /** Restore finished: the number of running test batches found on load. */
  readonly restored = new Emitter<number>();
  readonly stream: ListStream;

  private readonly transport: Transport;
  private readonly options: JobsPanelOptions;
  private readonly clock: Clock;
  private readonly list: VirtualList<Job>;
  private readonly conn: HTMLElement;
  private readonly restoredNote: HTMLElement;
  private readonly restoredText: HTMLElement;
  private readonly formHost: HTMLElement;
  private readonly stateFilter: HTMLSelectElement;
  private readonly kindFilter: HTMLSelectElement;
  private readonly search: HTMLInputElement;
  private readonly summary: HTMLElement;
  private readonly empty: HTMLElement;
  private readonly live: HTMLElement;
  private readonly newTraining: HTMLButtonElement;
  private readonly newTest: HTMLButtonElement;
  private form: JobForm | null = null;
  private frame = 0;
  private expiry: TimerHandle | null = null;
  private ticker: TimerHandle | null = null;
  private started = false;
  private disconnectors: (() => void)[] = [];

  constructor(options: JobsPanelOptions) {
    super();
    this.options = options;
    this.transport = options.transport;
    this.clock = options.clock ?? realClock;
    this.id = PANEL_ID;
    this.addClass('jobctl-panel');
    this.title.caption = 'Jobs';
    this.model = new JobListModel(this.transport, options.model);
    this.runner = new ActionRunner(this.transport, this.model, { now: () => this.clock.now() });
    this.stream = options.makeStream ? options.makeStream(this.transport) : new ListStream(this.transport, options.stream);

    // ---- header
    this.newTraining = h('button', {
      class: 'jobctl-button jobctl-panel-new',
      text: 'New training job',
      attrs: { type: 'button', 'data-jobctl-new': 'training' }
    });
    this.newTest = h('button', {
      class: 'jobctl-button jobctl-panel-new',
      text: 'New test batch',
      attrs: { type: 'button', 'data-jobctl-new': 'test_batch' }
    });
    this.newTraining.addEventListener('click', () => this.openForm('training'));
    this.newTest.addEventListener('click', () => this.openForm('test_batch'));
    const header = h(
      'div',
      { class: 'jobctl-panel-header' },
      h('h2', { class: 'jobctl-panel-title', text: 'Jobs' }),
      h('div', { class: 'jobctl-panel-new-buttons' }, this.newTraining, this.newTest)
    );

    this.conn = h('div', { class: 'jobctl-panel-conn', attrs: { role: 'status' } });
    this.conn.hidden = true;
    this.restoredText = h('span', { class: 'jobctl-panel-restored-text' });
    const dismiss = h('button', {
      class: 'jobctl-panel-dismiss',
      text: '×',
      attrs: { type: 'button', 'aria-label': 'Dismiss', title: 'Dismiss' }
    });
    dismiss.addEventListener('click', () => {
      this.restoredNote.hidden = true;
    });
    this.restoredNote = h('div', { class: 'jobctl-panel-restored', attrs: { role: 'status' } }, this.restoredText, dismiss);
    this.restoredNote.hidden = true;
    this.formHost = h('div', { class: 'jobctl-panel-form' });
    this.formHost.hidden = true;

    // ---- filters
    this.stateFilter = h('select', {
      class: 'jobctl-filter jobctl-panel-state',
      attrs: { 'aria-label': 'Filter by state', title: 'Filter by state' }
    });
    const stateOptions: [string, string][] = [
      [STATE_ALL, 'All states'],
      [STATE_ACTIVE, 'Active'],
      ...JOB_STATES.map(s => [s, s] as [string, string])
    ];
    for (const [value, label] of stateOptions) {
      const o = h('option', { text: label });
      o.value = value;
      this.stateFilter.appendChild(o);
    }
    this.kindFilter = h('select', {
      class: 'jobctl-filter jobctl-panel-kind',
      attrs: { 'aria-label': 'Filter by kind', title: 'Filter by kind' }
    });
    for (const [value, label] of [[KIND_ALL, 'All kinds'], ...JOB_KINDS.map(k => [k, KIND_LABELS[k] ?? k])]) {
      const o = h('option', { text: label });
      o.value = value;
      this.kindFilter.appendChild(o);
    }
    this.search = h('input', {
      class: 'jobctl-panel-search',
      attrs: { type: 'search', 'aria-label': 'Search jobs', placeholder: 'Search jobs', autocomplete: 'off', spellcheck: 'false' }
    });
    this.stateFilter.addEventListener('change', () => void this.model.setFilter({ state: this.stateFilter.value }));
    this.kindFilter.addEventListener('change', () => void this.model.setFilter({ kind: this.kindFilter.value }));
    this.search.addEventListener('input', () => void this.model.setFilter({ search: this.search.value }));
    this.search.addEventListener('keydown', ev => {
      if (ev.key === 'ArrowDown') {
        const first = this.model.visible()[0];
        if (first) {
          ev.preventDefault();
          this.list.scrollToKey(first.id, true);
        }
      }
    });
    const filters = h(
      'div',
      { class: 'jobctl-panel-filters', attrs: { role: 'search' } },
      h('div', { class: 'jobctl-panel-selects' }, this.stateFilter, this.kindFilter),
      this.search
    );
    this.summary = h('div', { class: 'jobctl-panel-summary', attrs: { 'aria-live': 'polite' } });

    // ---- rows
    this.list = new VirtualList<Job>({
      rowHeight: ROW_HEIGHT,
      label: 'Jobs',
      key: job => job.id,
      create: () =>
        createRow({
          action: (id, action) => void this.act(id, action),
          open: id => this.options.open(id)
        }),
      render: (el, job) => renderRow(el, job, this.runner.status(job.id), this.clock.now()),
      activate: job => this.options.open(job.id),
      nearEnd: () => {
        if (!this.model.complete && !this.model.loading && this.model.loaded) {
          void this.model.loadMore();
        }
      }
    });
    this.empty = h('div', { class: 'jobctl-panel-empty' });
    this.empty.hidden = true;
    const body = h('div', { class: 'jobctl-panel-body' }, this.list.node, this.empty);
    this.live = h('div', { class: 'jobctl-panel-live', attrs: { role: 'status', 'aria-live': 'polite' } });
    this.live.hidden = true;

    replaceChildren(this.node, header, this.conn, this.restoredNote, this.formHost, filters, this.summary, body, this.live);

    // ---- wiring
    this.disconnectors.push(
      this.model.changed.connect(() => this.requestRender()),
      this.model.failed.connect(() => this.requestRender()),
      this.model.transition.connect(t => this.transitions.emit(t)),
      this.runner.changed.connect(() => {
        this.list.refresh();
        this.armExpiry();
      }),
      this.runner.outcome.connect(({ name, status }) => {
        if (status.phase !== 'busy') {
          this.say(`${name}: ${status.message}`, status.phase !== 'ok');
        }
      }),
      this.stream.job.connect(job => this.model.applyJob(job, true)),
      this.stream.deleted.connect(id => {
        this.model.applyDeleted(id);
        this.runner.forget(id);
      }),
      this.stream.opened.connect(() => void this.model.refresh()),
      this.stream.stateChanged.connect(() => this.renderConnection())
    );
  }

  /** Load the first page, restore active work, follow the stream. Idempotent. */
  start(): void {
    if (this.started) {
      return;
    }
    this.started = true;
    void this.model.refresh();
    this.stream.start();
    void this.restore();
    this.requestRender();
  }

  /** Active jobs and running test batches as the server has them (on page load). */
  async restore(): Promise<number> {
    let batches: unknown[] = [];
    try {
      const [b, active] = await Promise.all([
        this.transport.request<unknown>('GET', 'batches/active'),
        this.transport.request<unknown>('GET', queryString({ state: STATE_ACTIVE, kind: KIND_ALL }, 1000, null))
      ]);
      batches = Array.isArray(b) ? b : [];
      const jobs = isRecord(active) && Array.isArray(active.jobs) ? active.jobs : [];
      this.model.batch(() => {
        for (const raw of jobs) {
          const job = asJob(raw);
          if (job) {
            this.model.applyJob(job, false);
            this.model.pin(job.id);
          }
        }
      });
    } catch (err) {
      this.say(`Could not restore running work: ${errorMessage(err)}`, true);
      return 0;
    }
    const n = batches.filter(isRunningBatch).length;
    if (n > 0) {
      const text = restoredMessage(n);
      setText(this.restoredText, text);
      this.restoredNote.hidden = false;
      this.options.announce?.(text, 'info');
    }
    this.restored.emit(n);
    return n;
  }

  /** Open (or focus) a new-job form. */
  openForm(kind: FormKind): void {
    if (this.form && this.form.kind === kind) {
      this.form.focus();
      return;
    }
    this.closeForm();
    this.form = new JobForm({
      kind,
      transport: this.transport,
      onCancel: () => this.closeForm(true),
      onCreated: (job, started) => this.created(job, started)
    });
    replaceChildren(this.formHost, this.form.node);
    this.formHost.hidden = false;
    this.newTraining.setAttribute('aria-expanded', String(kind === 'training'));
    this.newTest.setAttribute('aria-expanded', String(kind === 'test_batch'));
    this.form.focus();
  }

  closeForm(refocus = false): void {
    const kind = this.form?.kind;
    this.form = null;
    replaceChildren(this.formHost);
    this.formHost.hidden = true;
    this.newTraining.setAttribute('aria-expanded', 'false');
    this.newTest.setAttribute('aria-expanded', 'false');
    if (refocus && kind) {
      (kind === 'training' ? this.newTraining : this.newTest).focus();
    }
  }

  get currentForm(): JobForm | null {
    return this.form;
  }

  /** Show a job's row (clearing filters that hide it) and focus it. */
  reveal(jobId: string): void {
    if (this.model.indexOf(jobId) < 0 && this.model.get(jobId)) {
      this.stateFilter.value = STATE_ALL;
      this.kindFilter.value = KIND_ALL;
      this.search.value = '';
      void this.model.setFilter({ state: STATE_ALL, kind: KIND_ALL, search: '' });
    }
    this.renderNow();
    this.list.scrollToKey(jobId, true);
    const row = this.list.rowOf(jobId);
    if (row) {
      row.classList.remove('jobctl-prow-new');
      void row.offsetWidth; // restart the highlight animation
      row.classList.add('jobctl-prow-new');
    }
  }

  /** Run an action of a row. */
  async act(jobId: string, action: ActionName): Promise<unknown> {
    const question = questionFor(action, this.model.get(jobId)?.name || jobId);
    if (question && (this.runner.busy(jobId) || !(await this.options.confirm(question)))) {
      return;
    }
    const outcome = await this.runner.run(jobId, action);
    if (outcome.created) {
      this.reveal(outcome.created.id);
    }
    return outcome;
  }

  /** Set the filters (e.g. from a command). */
  setFilter(state: string, kind: string, search: string): Promise<void> {
    this.stateFilter.value = state;
    this.kindFilter.value = kind;
    this.search.value = search;
    return this.model.setFilter({ state, kind, search });
  }

  /** Render now instead of on the next frame. */
  renderNow(): void {
    if (this.frame) {
      cancelAnimationFrame(this.frame);
      this.frame = 0;
    }
    this.render();
  }

  override dispose(): void {
    if (this.isDisposed) {
      return;
    }
    for (const d of this.disconnectors) {
      d();
    }
    this.stream.close();
    this.list.dispose();
    if (this.frame) {
      cancelAnimationFrame(this.frame);
    }
    this.clearTimer('expiry');
    this.clearTimer('ticker');
    super.dispose();
  }

  protected override onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.list.refresh(true);
  }

  protected override onResize(msg: Widget.ResizeMessage): void {
    super.onResize(msg);
    this.list.refresh();
  }

  // ------------------------------------------------------------------ internals

  private created(job: Job, started: boolean): void {
    this.closeForm();
    this.model.applyJob(job, true);
    const label = job.name || job.id;
    this.say(
      started ? `Created and started ${label} (${job.id})` : `Created ${label} (${job.id}); it is pending until you press Start`,
      false
    );
    this.reveal(job.id);
  }

  private say(text: string, error: boolean): void {
    setText(this.live, text);
    this.live.hidden = !text;
    this.live.dataset.kind = error ? 'error' : 'ok';
  }

  private requestRender(): void {
    if (this.frame || this.isDisposed) {
      return;
    }
    if (typeof requestAnimationFrame !== 'function') {
      this.render();
      return;
    }
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  private render(): void {
    const rows = this.model.visible();
    this.list.setItems(rows, true);
    this.renderConnection();
    this.renderSummary(rows.length);
    this.armTicker(rows);
  }

  private renderSummary(n: number): void {
    const m = this.model;
    const filtered = m.filter.state !== STATE_ALL || m.filter.kind !== KIND_ALL || m.filter.search.trim() !== '';
    let text: string;
    if (m.error && !m.loaded) {
      text = m.error;
    } else if (!m.loaded) {
      text = 'Loading jobs…';
    } else {
      const noun = n === 1 ? 'job' : 'jobs';
      text = `${formatCount(n)}${m.complete ? '' : '+'} ${filtered ? `matching ${noun}` : noun}`;
      if (m.loading) {
        text += ' · loading more…';
      } else if (!m.complete) {
        text += ' · scroll for more';
      }
      if (m.error) {
        text += ` · ${m.error}`;
      }
    }
    setText(this.summary, text);
    this.summary.classList.toggle('jobctl-error-text', !!m.error);
    const none = m.loaded && n === 0;
    this.empty.hidden = !none;
    if (none) {
      setText(this.empty, filtered ? 'No jobs match these filters.' : 'No jobs yet. Create one with New training job or New test batch.');
    }
    this.list.node.hidden = none;
  }

  private renderConnection(): void {
    const down = this.stream.reconnecting;
    this.conn.hidden = !down;
    setText(this.conn, down ? 'Reconnecting…' : '');
    this.node.classList.toggle('jobctl-offline', down);
  }

  /** Durations of active rows move every second. */
  private armTicker(rows: readonly Job[]): void {
    const anyActive = rows.length > 0 && rows.some(j => (ACTIVE_STATES as readonly string[]).includes(j.status));
    if (!anyActive) {
      this.clearTimer('ticker');
      return;
    }
    if (this.ticker !== null) {
      return;
    }
    this.ticker = this.clock.setTimeout(() => {
      this.ticker = null;
      if (this.isVisible) {
        this.list.refresh();
      }
      this.armTicker(this.model.visible());
    }, 1000);
  }

  /** When an action's outcome expires, re-render its row (a job found gone leaves the list). */
  private armExpiry(): void {
    this.clearTimer('expiry');
    const at = this.runner.nextExpiry();
    if (at === null) {
      return;
    }
    this.expiry = this.clock.setTimeout(
      () => {
        this.expiry = null;
        for (const { id, status } of this.runner.sweep()) {
          if (status.phase === 'gone') {
            this.model.applyDeleted(id); // the server said it does not exist
          }
        }
        this.list.refresh();
        this.armExpiry();
      },
      Math.max(50, at - this.clock.now() + 20)
    );
  }

  private clearTimer(name: 'expiry' | 'ticker'): void {
    const t = this[name];
    if (t !== null) {
      this.clock.clearTimeout(t);
      this[name] = null;
    }
  }
}
