/**
 * Fakes for the stream and the view: a clock the test moves by hand, and a transport whose
 * sockets and requests the test answers. No timers or network of the real world.
 */

import { Clock, TimerHandle } from '../src/api/clock';
import { ApiError } from '../src/api/errors';
import { HttpMethod, StreamHandlers, StreamParams, StreamSocket, Transport } from '../src/api/transport';
import { Job } from '../src/api/types';

interface Timer {
  id: number;
  at: number;
  fn: () => void;
  ms: number;
}

export class FakeClock implements Clock {
  time = 1_700_000_000_000;
  private timers: Timer[] = [];
  private nextId = 1;
  /** Every delay ever scheduled, in order (to check backoff). */
  readonly scheduled: number[] = [];

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const t = { id: this.nextId++, at: this.time + ms, fn, ms };
    this.timers.push(t);
    this.scheduled.push(ms);
    return t.id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers = this.timers.filter(t => t.id !== handle);
  }

  /** Run every timer due within `ms`, in time order (timers may schedule timers). */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = this.timers.filter(t => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) {
        break;
      }
      this.timers = this.timers.filter(t => t !== due);
      this.time = due.at;
      due.fn();
    }
    this.time = end;
  }

  pending(): number[] {
    return this.timers.map(t => t.at - this.time).sort((a, b) => a - b);
  }
}

export class FakeSocket implements StreamSocket {
  closedByClient = false;
  ended = false;
  constructor(
    readonly path: string,
    readonly params: StreamParams,
    private readonly handlers: StreamHandlers
  ) {}

  close(): void {
    this.closedByClient = true;
  }

  open(): this {
    this.handlers.open();
    return this;
  }

  send(frame: unknown): this {
    if (!this.closedByClient && !this.ended) {
      this.handlers.message(frame);
    }
    return this;
  }

  /** The server (or the network) ends the connection. */
  drop(code = 1006, reason = ''): void {
    if (!this.closedByClient && !this.ended) {
      this.ended = true;
      this.handlers.close(code, reason);
    }
  }
}

export interface RequestRecord {
  method: HttpMethod;
  path: string;
  body?: unknown;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

type Responder = (req: RequestRecord) => unknown | Promise<unknown> | undefined;

export class FakeTransport implements Transport {
  readonly sockets: FakeSocket[] = [];
  readonly requests: RequestRecord[] = [];
  /** Answers requests at once when it returns something other than undefined. */
  responder: Responder = () => undefined;

  request<T>(method: HttpMethod, path: string, body?: unknown): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const rec: RequestRecord = { method, path, body, resolve: v => resolve(v as T), reject };
      this.requests.push(rec);
      let answer: unknown;
      try {
        answer = this.responder(rec);
      } catch (err) {
        reject(err);
        return;
      }
      if (answer instanceof ApiError) {
        reject(answer);
      } else if (answer !== undefined) {
        resolve(answer as T);
      }
    });
  }

  openStream(path: string, params: StreamParams, handlers: StreamHandlers): StreamSocket {
    const s = new FakeSocket(path, { ...params }, handlers);
    this.sockets.push(s);
    return s;
  }

  get last(): FakeSocket {
    const s = this.sockets[this.sockets.length - 1];
    if (!s) {
      throw new Error('no socket opened');
    }
    return s;
  }
}

export function makeJob(over: Partial<Job> = {}): Job {
  return {
    id: 'a1b2c3d4e5f60718293a4b5c6d7e8f90',
    kind: 'training',
    name: 'demo',
    status: 'running',
    spec: {},
    attempt: 1,
    created_at: '2026-12-01T10:00:00Z',
    started_at: '2026-12-01T10:00:01Z',
    finished_at: null,
    last_seq: 0,
    progress: { done: null, total: null, unit: null, rate: null, eta_s: null },
    counts: { total: 0, completed: 0, passed: 0, failed: 0, skipped: 0 },
    metrics: {},
    ...over
  };
}

export function ev(job: string, seq: number, event: string, data: Record<string, unknown>) {
  return { type: 'event', job, seq, event, ts: '2026-12-01T10:00:02Z', data };
}

/** Let pending promise callbacks run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await Promise.resolve();
  }
}

/** The error a promise rejects with (fails the test if it resolves). */
export async function rejected(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p;
  } catch (err) {
    return err as ApiError;
  }
  throw new Error('expected the promise to reject');
}
