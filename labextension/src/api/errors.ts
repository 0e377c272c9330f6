/**
 * The one error type of every request: the server's own sentence when it gave one.
 *
 * `status` is the HTTP status, or 0 when no answer came (network down, timeout). The view
 * shows `message` as is, so it is always a sentence a user understands.
 */

export const TIMEOUT_MESSAGE = 'The server did not answer in time';
export const UNREACHABLE_MESSAGE = 'The server could not be reached';

export interface ApiErrorOptions {
  field?: string;
  /** The job's state named by a 409 (`{"error", "status"}`). */
  state?: string;
  timeout?: boolean;
}

export class ApiError extends Error {
  readonly status: number;
  readonly field?: string;
  readonly state?: string;
  readonly timeout: boolean;

  constructor(status: number, message: string, options: ApiErrorOptions = {}) {
    super(message);
    this.name = options.timeout ? 'TimeoutError' : 'ApiError';
    this.status = status;
    this.field = options.field;
    this.state = options.state;
    this.timeout = options.timeout ?? false;
  }

  /** From an error body `{"error", "field"?, "status"?}`, whatever the server put in it. */
  static fromBody(status: number, body: unknown, fallback: string): ApiError {
    const b = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
    const message = typeof b.error === 'string' && b.error ? b.error : fallback;
    return new ApiError(status, message, {
      field: typeof b.field === 'string' ? b.field : undefined,
      state: typeof b.status === 'string' ? b.status : undefined
    });
  }

  static timedOut(): ApiError {
    return new ApiError(0, TIMEOUT_MESSAGE, { timeout: true });
  }
}

export function isApiError(err: unknown): err is ApiError {
  return err instanceof ApiError;
}

/** Any thrown value as a sentence for the user. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error && err.message) {
    return err.message;
  }
  return String(err);
}
