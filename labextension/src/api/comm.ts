/**
 * Transport relayed through the anywidget model's kernel comm, for hosts whose page is not a
 * Jupyter page (VS Code, Colab): the kernel-side widget calls the server for us.
 *
 * Relay protocol (the Python side implements exactly this; keep both in step):
 *   JS → Py  {"jobctl":"request","id":N,"method":"GET","path":"jobs/ID","body":obj|null}
 *   Py → JS  {"jobctl":"response","id":N,"status":200,"body":obj}
 *   JS → Py  {"jobctl":"subscribe","sub":N,"path":"jobs/ID/stream","after":SEQ}   (or path "stream")
 *   Py → JS  {"jobctl":"message","sub":N,"message":<a server stream frame>}
 *   Py → JS  {"jobctl":"closed","sub":N}
 *   JS → Py  {"jobctl":"unsubscribe","sub":N}
 * `status` 0 in a response means the kernel could not reach the server (body.error says why).
 */

import { ApiError, UNREACHABLE_MESSAGE } from './errors';
import {
  CLOSE_ABNORMAL,
  HttpMethod,
  REQUEST_TIMEOUT_MS,
  StreamHandlers,
  StreamParams,
  StreamSocket,
  Transport
} from './transport';
import { isRecord } from './types';

type CustomHandler = (content: unknown, buffers?: unknown) => void;

/** The part of an anywidget model this needs. */
export interface CommModel {
  send(content: Record<string, unknown>, callbacks?: unknown, buffers?: unknown): void;
  on(name: 'msg:custom', handler: CustomHandler): void;
  off(name: 'msg:custom', handler?: CustomHandler): void;
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: ApiError): void;
  timer: ReturnType<typeof setTimeout>;
}

interface Subscription {
  handlers: StreamHandlers;
  opened: boolean;
}

export class CommTransport implements Transport {
  private nextId = 1;
  private nextSub = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly subs = new Map<number, Subscription>();
  private readonly onCustom: CustomHandler;
  private disposed = false;

  constructor(
    private readonly model: CommModel,
    private readonly timeoutMs: number = REQUEST_TIMEOUT_MS
  ) {
    this.onCustom = content => this.receive(content);
    model.on('msg:custom', this.onCustom);
  }

  request<T>(method: HttpMethod, path: string, body?: unknown): Promise<T> {
    if (this.disposed) {
      return Promise.reject(new ApiError(0, UNREACHABLE_MESSAGE));
    }
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(ApiError.timedOut());
      }, this.timeoutMs);
      this.pending.set(id, { resolve: v => resolve(v as T), reject, timer });
      try {
        this.model.send({ jobctl: 'request', id, method, path, body: body ?? null });
      } catch {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new ApiError(0, UNREACHABLE_MESSAGE));
      }
    });
  }

  openStream(path: string, params: StreamParams, handlers: StreamHandlers): StreamSocket {
    const sub = this.nextSub++;
    const message: Record<string, unknown> = { jobctl: 'subscribe', sub, path };
    if (params.after !== undefined) {
      message.after = Number(params.after);
    }
    this.subs.set(sub, { handlers, opened: false });
    try {
      this.model.send(message);
    } catch {
      this.subs.delete(sub);
      setTimeout(() => handlers.close(CLOSE_ABNORMAL, UNREACHABLE_MESSAGE), 0);
    }
    return {
      close: () => {
        if (this.subs.delete(sub) && !this.disposed) {
          try {
            this.model.send({ jobctl: 'unsubscribe', sub });
          } catch {
            // the comm is gone; so is the subscription
          }
        }
      }
    };
  }

  dispose(): void {
    if (this.disposed) {
      return;
    }
    for (const sub of [...this.subs.keys()]) {
      try {
        this.model.send({ jobctl: 'unsubscribe', sub });
      } catch {
        // ignore: tearing down
      }
    }
    this.disposed = true;
    this.model.off('msg:custom', this.onCustom);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new ApiError(0, UNREACHABLE_MESSAGE));
    }
    this.pending.clear();
    this.subs.clear();
  }

  private receive(content: unknown): void {
    if (!isRecord(content) || this.disposed) {
      return;
    }
    switch (content.jobctl) {
      case 'response': {
        const p = typeof content.id === 'number' ? this.pending.get(content.id) : undefined;
        if (!p) {
          return; // timed out already, or not ours
        }
        this.pending.delete(content.id as number);
        clearTimeout(p.timer);
        const status = typeof content.status === 'number' ? content.status : 0;
        if (status >= 200 && status < 300) {
          p.resolve(content.body ?? undefined);
        } else {
          const fallback = status ? `The server answered ${status}` : UNREACHABLE_MESSAGE;
          p.reject(ApiError.fromBody(status, content.body, fallback));
        }
        return;
      }
      case 'message': {
        const s = typeof content.sub === 'number' ? this.subs.get(content.sub) : undefined;
        if (!s) {
          return;
        }
        if (!s.opened) {
          s.opened = true; // the relay has no "open" message: the first frame is the proof
          s.handlers.open();
        }
        // the subscription may have been closed by the open() handler
        if (this.subs.get(content.sub as number) === s) {
          s.handlers.message(content.message);
        }
        return;
      }
      case 'closed': {
        const sub = typeof content.sub === 'number' ? content.sub : -1;
        const s = this.subs.get(sub);
        if (s) {
          this.subs.delete(sub);
          const code = typeof content.code === 'number' ? content.code : CLOSE_ABNORMAL;
          s.handlers.close(code, typeof content.reason === 'string' ? content.reason : '');
        }
        return;
      }
      default:
        return;
    }
  }
}
