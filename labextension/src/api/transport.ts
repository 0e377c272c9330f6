/**
 * How the front end reaches the jobctl API: one interface, two implementations
 * (PageTransport: the page's Jupyter server; CommTransport: relayed through the widget's
 * kernel comm where the page is not a Jupyter page). Every request and stream of the view,
 * the list and the side panel goes through a Transport, so the host decides once.
 */

export { ApiError, TIMEOUT_MESSAGE, UNREACHABLE_MESSAGE, errorMessage, isApiError } from './errors';

export type HttpMethod = 'GET' | 'POST' | 'DELETE';

/** Query parameters of a stream (`after` for a job stream). */
export type StreamParams = Record<string, string | number>;

/**
 * Callbacks of one stream connection. `close` fires once, when the connection ends for any
 * reason other than the caller's own `StreamSocket.close()` (after which nothing fires).
 */
export interface StreamHandlers {
  /** The connection is up (for a relay: its first frame arrived). */
  open(): void;
  /** One frame, parsed from JSON. */
  message(frame: unknown): void;
  close(code: number, reason: string): void;
}

export interface StreamSocket {
  close(): void;
}

export interface Transport {
  /**
   * `path` is relative to `{base_url}jobctl/api/` (e.g. `jobs/abc/stop`, `jobs?limit=50`).
   * Resolves with the parsed JSON body (undefined for 204); rejects with an ApiError
   * carrying the server's sentence, or the timeout message after `REQUEST_TIMEOUT_MS`.
   */
  request<T>(method: HttpMethod, path: string, body?: unknown): Promise<T>;
  openStream(path: string, params: StreamParams, handlers: StreamHandlers): StreamSocket;
}

/** docs/architecture.md: a request not answered within 10 s says so. */
export const REQUEST_TIMEOUT_MS = 10_000;

/** Close codes the server uses on streams (server/stream.py). */
export const CLOSE_NORMAL = 1000;
export const CLOSE_ABNORMAL = 1006;
export const CLOSE_TOO_SLOW = 1013;
export const CLOSE_JOB_DELETED = 4404;

/** Path segment of a job id; ids are validated as plain tokens, this is belt and braces. */
export function jobPath(jobId: string, ...rest: string[]): string {
  return ['jobs', encodeURIComponent(jobId), ...rest].join('/');
}
