/**
 * Runs a row's action (Stop, Pause, Resume, Start, Delete, Rerun failed) and keeps what the
 * row says about it: the action's word while in flight (`Stopping…`, its button disabled),
 * then the outcome — `Stop requested`, the server's own sentence (409 names the state, 404
 * says the job is gone), or `The server did not answer in time`, after which the job is
 * read again so the row shows its real state. No DOM: the panel renders `status(id)`.
 */

import { Emitter } from '../api/emitter';
import { Transport, errorMessage, isApiError, jobPath } from '../api/transport';
import { Job, isRecord } from '../api/types';
import { ACTIONS, ActionName } from '../view/actions';
import { JobListModel, asJob } from './listmodel';

export type ActionPhase = 'busy' | 'ok' | 'error' | 'timeout' | 'gone';

export interface ActionStatus {
  action: ActionName;
  phase: ActionPhase;
  /** What the row says now. */
  message: string;
  /** When the message was set (ms, the runner's clock). */
  at: number;
}

export interface RunnerOptions {
  now?: () => number;
  /** How long an outcome stays on the row (ms); errors stay twice as long. */
  keepMs?: number;
}

export const KEEP_MS = 8_000;

export interface ActionOutcome {
  ok: boolean;
  message: string;
  /** The new job of a rerun. */
  created?: Job;
}

export class ActionRunner {
  /** A row's action status changed (its id). */
  readonly changed = new Emitter<string>();
  /** Every outcome, for the panel's live region and notifications. */
  readonly outcome = new Emitter<{ id: string; name: string; status: ActionStatus; created?: Job }>();
  private readonly states = new Map<string, ActionStatus>();
  private readonly now: () => number;
  private readonly keepMs: number;

  constructor(
    private readonly transport: Transport,
    private readonly model: JobListModel,
    options: RunnerOptions = {}
  ) {
    this.now = options.now ?? (() => Date.now());
    this.keepMs = options.keepMs ?? KEEP_MS;
  }

  /** The status a row shows, or null (none, or it expired). */
  status(id: string): ActionStatus | null {
    const s = this.states.get(id);
    if (!s || this.expired(s)) {
      return null;
    }
    return s;
  }

  /** True while any action of this job is in flight. */
  busy(id: string): boolean {
    return this.states.get(id)?.phase === 'busy';
  }

  /** Forget expired outcomes; returns them (ids with their last status), to re-render. */
  sweep(): { id: string; status: ActionStatus }[] {
    const swept: { id: string; status: ActionStatus }[] = [];
    for (const [id, s] of this.states) {
      if (this.expired(s)) {
        this.states.delete(id);
        swept.push({ id, status: s });
      }
    }
    return swept;
  }

  /** The earliest time an outcome expires (for the panel's timer), or null. */
  nextExpiry(): number | null {
    let t: number | null = null;
    for (const s of this.states.values()) {
      if (s.phase !== 'busy') {
        const at = s.at + this.keepFor(s);
        t = t === null ? at : Math.min(t, at);
      }
    }
    return t;
  }

  async run(jobId: string, action: ActionName): Promise<ActionOutcome> {
    const spec = ACTIONS[action];
    if (this.busy(jobId)) {
      return { ok: false, message: '' };
    }
    const name = this.model.get(jobId)?.name ?? jobId;
    this.set(jobId, { action, phase: 'busy', message: spec.busy, at: this.now() });
    try {
      const body = await this.transport.request<unknown>(spec.method, spec.path(jobId), spec.body);
      let created: Job | undefined;
      if (action === 'delete') {
        this.model.applyDeleted(jobId);
      } else if (action === 'rerun_failed') {
        const job = asJob(body);
        if (job) {
          created = job;
          this.model.applyJob(job, true);
        }
      } else if (isRecord(body)) {
        this.model.applyJob(body, true);
      }
      const message = created ? `${spec.accepted}: ${created.name || created.id}` : spec.accepted;
      this.finish(jobId, name, { action, phase: 'ok', message, at: this.now() }, created);
      return { ok: true, message, created };
    } catch (err) {
      const message = errorMessage(err);
      if (isApiError(err) && err.timeout) {
        this.finish(jobId, name, { action, phase: 'timeout', message, at: this.now() });
        void this.reread(jobId);
      } else if (isApiError(err) && err.status === 404) {
        this.finish(jobId, name, { action, phase: 'gone', message, at: this.now() });
      } else {
        this.finish(jobId, name, { action, phase: 'error', message, at: this.now() });
        if (isApiError(err) && err.status === 409) {
          void this.reread(jobId); // the row was behind the server: show where the job is
        }
      }
      return { ok: false, message };
    }
  }

  /** Read the job again (after a timeout or a conflict) so the row shows its real state. */
  async reread(jobId: string): Promise<void> {
    try {
      const job = await this.transport.request<unknown>('GET', jobPath(jobId));
      this.model.applyJob(job, true);
    } catch (err) {
      if (isApiError(err) && err.status === 404) {
        const prior = this.states.get(jobId);
        this.set(jobId, {
          action: prior?.action ?? 'stop',
          phase: 'gone',
          message: errorMessage(err),
          at: this.now()
        });
      }
      // anything else: the stream brings the state when the server is back
    }
  }

  /** Drop a row's status (e.g. the job was deleted and its row is gone). */
  forget(jobId: string): void {
    if (this.states.delete(jobId)) {
      this.changed.emit(jobId);
    }
  }

  private expired(s: ActionStatus): boolean {
    return s.phase !== 'busy' && this.now() - s.at >= this.keepFor(s);
  }

  private keepFor(s: ActionStatus): number {
    return s.phase === 'ok' ? this.keepMs : this.keepMs * 2;
  }

  private set(id: string, status: ActionStatus): void {
    this.states.set(id, status);
    this.changed.emit(id);
  }

  private finish(id: string, name: string, status: ActionStatus, created?: Job): void {
    this.set(id, status);
    this.outcome.emit({ id, name, status, created });
  }
}
