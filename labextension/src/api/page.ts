/**
 * Transport to the page's own Jupyter server (JupyterLab, Notebook 7, anything that renders
 * `#jupyter-config-data`).
 *
 * It reproduces @jupyterlab/services' ServerConnection rules by hand, because the anywidget
 * ESM is loaded standalone and cannot import @jupyterlab/* (docs/architecture.md): the token
 * from PageConfig as `Authorization: token …` when there is one; otherwise (JupyterHub: the
 * token is "") the session cookie plus `X-XSRFToken` from the `_xsrf` cookie, which Jupyter
 * requires on cookie-authenticated POST/DELETE. Browsers cannot set headers on a WebSocket,
 * so a token goes into its query string; a cookie needs nothing.
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

export const API_PREFIX = 'jobctl/api/';

export interface PageConfig {
  /** The server's base URL, absolute or relative to the page (e.g. `/user/ada/`). */
  baseUrl: string;
  /** Explicit WebSocket base when the server set one; otherwise derived from baseUrl. */
  wsUrl?: string;
  token: string;
}

/** PageConfig from the page's `#jupyter-config-data`, or null when this is not a Jupyter page. */
export function readPageConfig(doc: Document | undefined = globalThis.document): PageConfig | null {
  const el = doc?.getElementById('jupyter-config-data');
  if (!el || !el.textContent) {
    return null;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(el.textContent);
  } catch {
    return null;
  }
  if (typeof raw !== 'object' || raw === null) {
    return null;
  }
  const data = raw as Record<string, unknown>;
  return {
    baseUrl: typeof data.baseUrl === 'string' && data.baseUrl ? data.baseUrl : '/',
    wsUrl: typeof data.wsUrl === 'string' && data.wsUrl ? data.wsUrl : undefined,
    token: typeof data.token === 'string' ? data.token : ''
  };
}

export function readCookie(name: string, doc: Document | undefined = globalThis.document): string | undefined {
  const cookies = doc?.cookie ?? '';
  for (const part of cookies.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return part.slice(eq + 1).trim();
      }
    }
  }
  return undefined;
}

type FetchLike = (input: string, init: RequestInit) => Promise<Response>;
type WebSocketCtor = new (url: string) => WebSocket;

export interface PageTransportOptions {
  config?: PageConfig;
  /** Where relative base URLs resolve (the page's location by default). */
  pageUrl?: string;
  fetch?: FetchLike;
  WebSocket?: WebSocketCtor;
  timeoutMs?: number;
  document?: Document;
}

export class PageTransport implements Transport {
  readonly apiUrl: URL;
  readonly wsApiUrl: URL;
  private readonly token: string;
  private readonly fetchImpl: FetchLike;
  private readonly WebSocketImpl: WebSocketCtor;
  private readonly timeoutMs: number;
  private readonly doc?: Document;

  constructor(options: PageTransportOptions = {}) {
    this.doc = options.document ?? globalThis.document;
    const config = options.config ?? readPageConfig(this.doc);
    if (!config) {
      throw new Error('jobctl: this page has no Jupyter server configuration.');
    }
    const page = options.pageUrl ?? globalThis.location?.href ?? 'http://localhost/';
    const base = new URL(withSlash(config.baseUrl), page);
    this.apiUrl = new URL(API_PREFIX, base);
    const wsBase = config.wsUrl ? new URL(withSlash(config.wsUrl), page) : new URL(base.href);
    if (wsBase.protocol === 'http:' || wsBase.protocol === 'https:') {
      wsBase.protocol = wsBase.protocol === 'https:' ? 'wss:' : 'ws:';
    }
    this.wsApiUrl = new URL(API_PREFIX, wsBase);
    this.token = config.token;
    // bound: calling a bare `fetch` reference with another `this` throws in browsers
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.WebSocketImpl = options.WebSocket ?? globalThis.WebSocket;
    this.timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS;
  }

  async request<T>(method: HttpMethod, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (this.token) {
      headers['Authorization'] = `token ${this.token}`;
    }
    const xsrf = readCookie('_xsrf', this.doc);
    if (xsrf && method !== 'GET') {
      headers['X-XSRFToken'] = xsrf;
    }
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
    }
    const controller = typeof AbortController === 'function' ? new AbortController() : undefined;
    let timedOut = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        controller?.abort();
        reject(ApiError.timedOut());
      }, this.timeoutMs);
    });
    const exchange = async (): Promise<T> => {
      let response: Response;
      try {
        response = await this.fetchImpl(new URL(path, this.apiUrl).href, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          credentials: 'same-origin',
          cache: 'no-store',
          signal: controller?.signal
        });
      } catch {
        throw timedOut ? ApiError.timedOut() : new ApiError(0, UNREACHABLE_MESSAGE);
      }
      const text = await response.text();
      let parsed: unknown = undefined;
      if (text) {
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = undefined;
        }
      }
      if (!response.ok) {
        throw ApiError.fromBody(
          response.status,
          parsed,
          `The server answered ${response.status} ${response.statusText}`.trim()
        );
      }
      return parsed as T;
    };
    try {
      return await Promise.race([exchange(), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  openStream(path: string, params: StreamParams, handlers: StreamHandlers): StreamSocket {
    const url = new URL(path, this.wsApiUrl);
    for (const [key, value] of Object.entries(params)) {
      url.searchParams.set(key, String(value));
    }
    if (this.token) {
      url.searchParams.set('token', this.token);
    }
    let closed = false;
    let ws: WebSocket;
    try {
      ws = new this.WebSocketImpl(url.href);
    } catch {
      // a malformed URL or a blocked scheme: report it like a failed connection
      setTimeout(() => !closed && handlers.close(CLOSE_ABNORMAL, UNREACHABLE_MESSAGE), 0);
      return { close: () => void (closed = true) };
    }
    ws.onopen = () => !closed && handlers.open();
    ws.onmessage = (ev: MessageEvent) => {
      if (closed || typeof ev.data !== 'string') {
        return;
      }
      let frame: unknown;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return; // not ours; the server only sends JSON
      }
      handlers.message(frame);
    };
    ws.onclose = (ev: CloseEvent) => {
      if (!closed) {
        closed = true;
        handlers.close(ev.code, ev.reason);
      }
    };
    return {
      close: () => {
        if (closed) {
          return;
        }
        closed = true;
        ws.onopen = ws.onmessage = ws.onclose = null;
        try {
          ws.close(1000);
        } catch {
          // already closing
        }
      }
    };
  }
}

function withSlash(url: string): string {
  return url.endsWith('/') ? url : url + '/';
}
