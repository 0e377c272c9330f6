/**
 * The stream module: live models over the server's two WebSockets (docs/architecture.md).
 *
 * JobStream follows `WS jobs/{id}/stream?after=SEQ`. It remembers the last seq it delivered
 * and resumes from it after any drop, so its listeners see every event once and in order:
 * anything at or below the last seq (a replay overlapping what we had) is dropped. A `reset`
 * (our seq is unknown to the server) clears the seq; listeners drop their local events and
 * rebuild from the fresh snapshot and replay that follow.
 *
 * ListStream follows `WS stream`: every job's summary changes, with no history; after each
 * (re)connect it says `opened` so its owner re-reads the list it shows.
 */

import { Emitter } from './emitter';
import { ReconnectingStream, StreamOptions } from './reconnect';
import { StreamParams, Transport, isApiError, jobPath } from './transport';
import { Job, JobEvent, isRecord } from './types';

export type { StreamState, StreamOptions } from './reconnect';

export interface SnapshotInfo {
  job: Job;
  /** True for the first snapshot after a reset: local events were dropped. */
  afterReset: boolean;
}

export interface JobStreamOptions extends StreamOptions {
  /** Resume after this seq (events up to it are known already). Default 0: everything. */
  after?: number;
}

export class JobStream extends ReconnectingStream {
  readonly snapshot = new Emitter<SnapshotInfo>();
  readonly event = new Emitter<JobEvent>();
  readonly reset = new Emitter<string>();
  readonly done = new Emitter<string>();
  private _lastSeq: number;
  private _job: Job | null = null;
  private resetPending = false;

  constructor(
    transport: Transport,
    readonly jobId: string,
    options: JobStreamOptions = {}
  ) {
    super(transport, jobPath(jobId, 'stream'), options);
    this._lastSeq = Math.max(0, Math.floor(options.after ?? 0));
  }

  /** The seq of the last event delivered to listeners. */
  get lastSeq(): number {
    return this._lastSeq;
  }

  /** The latest snapshot (not updated by events: the view folds those in itself). */
  get job(): Job | null {
    return this._job;
  }

  protected params(): StreamParams {
    return { after: this._lastSeq };
  }

  protected onFrame(frame: unknown): void {
    if (!isRecord(frame)) {
      return;
    }
    switch (frame.type) {
      case 'snapshot':
        if (isRecord(frame.job)) {
          this._job = frame.job as unknown as Job;
          const afterReset = this.resetPending;
          this.resetPending = false;
          this.snapshot.emit({ job: this._job, afterReset });
          this.markLive();
        }
        return;
      case 'event': {
        const seq = frame.seq;
        if (typeof seq !== 'number' || !Number.isInteger(seq) || seq <= this._lastSeq) {
          return; // a duplicate from an overlapping replay, or garbage
        }
        this._lastSeq = seq;
        this.event.emit({
          seq,
          event: typeof frame.event === 'string' ? frame.event : '',
          ts: typeof frame.ts === 'string' ? frame.ts : '',
          data: isRecord(frame.data) ? frame.data : {}
        });
        return;
      }
      case 'reset':
        // our seq means nothing to the server any more; a fresh snapshot follows
        this._lastSeq = 0;
        this.resetPending = true;
        this.reset.emit(typeof frame.reason === 'string' ? frame.reason : '');
        return;
      case 'done':
        this.done.emit(typeof frame.status === 'string' ? frame.status : '');
        this.finish('done');
        return;
      default:
        return; // heartbeat (it already proved the connection alive) or unknown
    }
  }

  /** A refused upgrade is what a deleted or unknown job looks like: ask the API. */
  protected override onHandshakeFailure(): void {
    this.transport.request<Job>('GET', jobPath(this.jobId)).then(
      () => undefined,
      err => {
        if (isApiError(err) && err.status === 404) {
          this.finish('gone');
        }
      }
    );
  }
}

export class ListStream extends ReconnectingStream {
  /** A job was created or changed (its full summary). */
  readonly job = new Emitter<Job>();
  readonly deleted = new Emitter<string>();
  /** Each (re)connection: what happened while down is not replayed; re-read the list. */
  readonly opened = new Emitter<void>();

  constructor(transport: Transport, options: StreamOptions = {}) {
    super(transport, 'stream', options);
    this.stateChanged.connect(state => {
      if (state === 'live') {
        this.opened.emit();
      }
    });
  }

  protected params(): StreamParams {
    return {};
  }

  protected override onOpen(): void {
    this.markLive(); // no snapshot on this stream: open is current
  }

  protected onFrame(frame: unknown): void {
    if (!isRecord(frame)) {
      return;
    }
    if (frame.type === 'job' && isRecord(frame.job) && typeof frame.job.id === 'string') {
      this.job.emit(frame.job as unknown as Job);
    } else if (frame.type === 'deleted' && typeof frame.id === 'string') {
      this.deleted.emit(frame.id);
    }
  }
}
