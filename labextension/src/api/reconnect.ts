/**
 * One stream connection that comes back by itself: the common part of JobStream and
 * ListStream. It reconnects with jittered exponential backoff, resets the backoff once a
 * connection has stayed up for a while (so a server that accepts and drops at once is not
 * hammered), and treats a connection that goes silent past the server's heartbeat as dead
 * (a laptop waking from sleep often has a socket that will never deliver or close).
 */

import { Backoff, BackoffOptions } from './backoff';
import { Clock, TimerHandle, realClock } from './clock';
import { Emitter } from './emitter';
import { CLOSE_JOB_DELETED, StreamParams, StreamSocket, Transport } from './transport';

/**
 * - `connecting`: first connection under way;
 * - `live`: up and current (a job stream: its snapshot arrived);
 * - `reconnecting`: lost; waiting or trying again;
 * - `done`: the server said there is nothing more (a terminal job's stream);
 * - `gone`: the job does not exist (deleted, or never did);
 * - `closed`: closed by its owner.
 */
export type StreamState = 'connecting' | 'live' | 'reconnecting' | 'done' | 'gone' | 'closed';

export interface StreamOptions extends BackoffOptions {
  clock?: Clock;
  /** A connection open this long resets the backoff. */
  stableMs?: number;
  /** No frame for this long on an open connection: it is dead (server heartbeat: 10 s). */
  silenceMs?: number;
  /** No frame this long after connecting: give up on this attempt. */
  connectTimeoutMs?: number;
}

export const STABLE_MS = 5_000;
export const SILENCE_MS = 35_000;
export const CONNECT_TIMEOUT_MS = 15_000;

export abstract class ReconnectingStream {
  readonly stateChanged = new Emitter<StreamState>();
  protected readonly clock: Clock;
  protected readonly backoff: Backoff;
  private _state: StreamState = 'connecting';
  private socket: StreamSocket | null = null;
  private attempt: object | null = null;
  private isOpen = false;
  private retryTimer: TimerHandle | null = null;
  private stableTimer: TimerHandle | null = null;
  private silenceTimer: TimerHandle | null = null;
  private readonly stableMs: number;
  private readonly silenceMs: number;
  private readonly connectTimeoutMs: number;
  private started = false;

  protected constructor(
    protected readonly transport: Transport,
    protected readonly path: string,
    options: StreamOptions = {}
  ) {
    this.clock = options.clock ?? realClock;
    this.backoff = new Backoff(options);
    this.stableMs = options.stableMs ?? STABLE_MS;
    this.silenceMs = options.silenceMs ?? SILENCE_MS;
    this.connectTimeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
  }

  get state(): StreamState {
    return this._state;
  }

  /** Up and current. */
  get connected(): boolean {
    return this._state === 'live';
  }

  /** Lost and trying again: what the view shows as `Reconnecting…`. */
  get reconnecting(): boolean {
    return this._state === 'reconnecting';
  }

  /** Ended for good (done, gone or closed): no more connections. */
  get finished(): boolean {
    return this._state === 'done' || this._state === 'gone' || this._state === 'closed';
  }

  start(): void {
    if (this.started || this.finished) {
      return;
    }
    this.started = true;
    this.listen(true);
    this.connect();
  }

  /** Skip the wait and try now (e.g. the browser came back online). */
  retryNow(): void {
    if (this._state !== 'reconnecting' || this.attempt !== null) {
      return;
    }
    this.clearTimer('retryTimer');
    this.connect();
  }

  close(): void {
    this.finish('closed');
  }

  /** Query parameters of the next connection (a job stream: `after`). */
  protected abstract params(): StreamParams;

  /** One parsed frame. */
  protected abstract onFrame(frame: unknown): void;

  /** The connection is up (a job stream is live only once its snapshot arrives). */
  protected onOpen(): void {
    // nothing by default
  }

  /**
   * A connection failed before it ever opened (the server refused the upgrade, or is down).
   * Subclasses may look into why, e.g. a job that no longer exists; by default: retry.
   */
  protected onHandshakeFailure(): void {
    // nothing to look into
  }

  protected setState(state: StreamState): void {
    if (this._state === state || this.finished) {
      return;
    }
    this._state = state;
    this.stateChanged.emit(state);
  }

  /** The stream is current: the view may stop saying `Reconnecting…`. */
  protected markLive(): void {
    this.setState('live');
  }

  /** End for good: no reconnects after this. */
  protected finish(state: 'done' | 'gone' | 'closed'): void {
    if (this.finished) {
      return;
    }
    this._state = state;
    this.clearTimers();
    this.listen(false);
    const socket = this.socket;
    this.socket = null;
    this.attempt = null;
    socket?.close();
    this.stateChanged.emit(state);
  }

  private connect(): void {
    if (this.finished) {
      return;
    }
    this.isOpen = false;
    // a token per attempt: callbacks of an older connection are ignored, even if they fire
    // synchronously from inside openStream()
    const attempt = {};
    this.attempt = attempt;
    const mine = () => this.attempt === attempt;
    this.armSilence(this.connectTimeoutMs);
    const socket = this.transport.openStream(this.path, this.params(), {
      open: () => {
        if (!mine()) {
          return;
        }
        this.isOpen = true;
        this.clearTimer('stableTimer');
        this.stableTimer = this.clock.setTimeout(() => {
          this.stableTimer = null;
          this.backoff.reset();
        }, this.stableMs);
        this.onOpen();
      },
      message: frame => {
        if (!mine()) {
          return;
        }
        this.armSilence(this.silenceMs);
        this.onFrame(frame);
      },
      close: code => {
        if (!mine()) {
          return;
        }
        this.attempt = null;
        this.socket = null;
        this.dropped(code);
      }
    });
    if (mine()) {
      this.socket = socket;
    } else {
      socket.close(); // it ended (or we finished) while opening
    }
  }

  private dropped(code: number): void {
    const wasOpen = this.isOpen;
    this.isOpen = false;
    this.clearTimer('stableTimer');
    this.clearTimer('silenceTimer');
    if (this.finished) {
      return;
    }
    if (code === CLOSE_JOB_DELETED) {
      this.finish('gone');
      return;
    }
    this.setState('reconnecting');
    this.clearTimer('retryTimer');
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, this.backoff.next());
    if (!wasOpen) {
      this.onHandshakeFailure();
    }
  }

  /**
   * The browser knows when the network is back or the tab is looked at again (a laptop
   * waking up): retry at once then instead of sitting out a long backoff step.
   */
  private readonly wake = () => {
    if (typeof document === 'undefined' || document.visibilityState !== 'hidden') {
      this.retryNow();
    }
  };

  private listen(on: boolean): void {
    const target = typeof window !== 'undefined' ? window : null;
    if (!target || typeof target.addEventListener !== 'function') {
      return;
    }
    const method = on ? 'addEventListener' : 'removeEventListener';
    target[method]('online', this.wake);
    if (typeof document !== 'undefined') {
      document[method]('visibilitychange', this.wake);
    }
  }

  private armSilence(ms: number): void {
    this.clearTimer('silenceTimer');
    this.silenceTimer = this.clock.setTimeout(() => {
      this.silenceTimer = null;
      if (this.attempt !== null) {
        // our own close() fires no handler: report the drop ourselves
        const socket = this.socket;
        this.socket = null;
        this.attempt = null;
        socket?.close();
        this.dropped(0);
      }
    }, ms);
  }

  private clearTimer(name: 'retryTimer' | 'stableTimer' | 'silenceTimer'): void {
    const handle = this[name];
    if (handle !== null) {
      this.clock.clearTimeout(handle);
      this[name] = null;
    }
  }

  private clearTimers(): void {
    this.clearTimer('retryTimer');
    this.clearTimer('stableTimer');
    this.clearTimer('silenceTimer');
  }
}
