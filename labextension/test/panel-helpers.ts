/**
 * A fake jobctl server for the panel's tests: jobs in memory, `GET jobs` keyset-paged and
 * filtered like the real one (newest first by created_at, id; `status` may list several),
 * `GET batches/active`, and the action routes. Requests can be held to test races.
 */

import { ApiError } from '../src/api/errors';
import { Job } from '../src/api/types';
import { FakeTransport, RequestRecord, makeJob } from './helpers';

export function jobN(i: number, over: Partial<Job> = {}): Job {
  const t = new Date(Date.UTC(2026, 11, 1, 0, 0, 0) + i * 1000).toISOString(); // ms precision, like the server
  return makeJob({
    id: i.toString(16).padStart(32, '0'),
    name: `job ${i}`,
    status: 'completed',
    created_at: t,
    started_at: t,
    finished_at: t,
    last_seq: 3,
    ...over
  });
}

export class FakeServer {
  jobs = new Map<string, Job>();
  readonly transport = new FakeTransport();
  /** Requests matching this are not answered until released (`held`). */
  hold: ((req: RequestRecord) => boolean) | null = null;
  readonly held: RequestRecord[] = [];
  readonly pages: string[] = [];

  constructor(jobs: Job[] = []) {
    for (const j of jobs) {
      this.jobs.set(j.id, j);
    }
    this.transport.responder = req => {
      if (this.hold && this.hold(req)) {
        this.held.push(req);
        return undefined;
      }
      return this.answer(req);
    };
  }

  add(job: Job): void {
    this.jobs.set(job.id, job);
  }

  /** Answer a held request now (with the server's state as it is now). */
  release(req: RequestRecord): void {
    const i = this.held.indexOf(req);
    if (i >= 0) {
      this.held.splice(i, 1);
    }
    const a = this.answer(req);
    if (a instanceof ApiError) {
      req.reject(a);
    } else {
      req.resolve(a);
    }
  }

  answer(req: RequestRecord): unknown {
    const url = new URL(req.path, 'http://x/');
    const parts = url.pathname.split('/').filter(Boolean);
    if (req.method === 'GET' && parts[0] === 'jobs' && parts.length === 1) {
      this.pages.push(req.path);
      return this.list(url.searchParams);
    }
    if (req.method === 'GET' && parts[0] === 'batches') {
      return [...this.jobs.values()]
        .filter(j => j.kind === 'test_batch' && !['completed', 'failed', 'cancelled', 'lost'].includes(j.status))
        .map(j => ({ batch_id: j.id, name: j.name, status: j.status, total_count: j.counts.total }));
    }
    if (parts[0] === 'jobs' && parts.length >= 2) {
      const job = this.jobs.get(parts[1]);
      if (!job) {
        return new ApiError(404, `No job with id ${parts[1]}.`);
      }
      if (req.method === 'GET' && parts.length === 2) {
        return { ...job };
      }
      if (req.method === 'DELETE') {
        this.jobs.delete(job.id);
        return null;
      }
      if (parts[2] === 'stop') {
        if (['completed', 'failed', 'cancelled', 'lost'].includes(job.status)) {
          return new ApiError(409, `Job ${job.id} is already ${job.status}; it cannot be stopped.`, { state: job.status });
        }
        const next = { ...job, status: job.status === 'pending' ? 'cancelled' : 'stopping', last_seq: job.last_seq + 1 };
        this.jobs.set(job.id, next);
        return next;
      }
    }
    return new ApiError(400, `unexpected ${req.method} ${req.path}`);
  }

  private list(q: URLSearchParams): unknown {
    const status = q.get('status');
    const kind = q.get('kind');
    const limit = Number(q.get('limit') ?? 50);
    const cursor = q.get('cursor');
    let rows = [...this.jobs.values()].sort((a, b) =>
      a.created_at !== b.created_at ? (a.created_at < b.created_at ? 1 : -1) : a.id < b.id ? 1 : a.id > b.id ? -1 : 0
    );
    if (status) {
      const states = status.split(',');
      rows = rows.filter(j => states.includes(j.status));
    }
    if (kind) {
      rows = rows.filter(j => j.kind === kind);
    }
    if (cursor) {
      const [c, id] = JSON.parse(atob(cursor)) as [string, string];
      rows = rows.filter(j => j.created_at < c || (j.created_at === c && j.id < id));
    }
    const page = rows.slice(0, limit);
    const more = rows.length > limit;
    const last = page[page.length - 1];
    return { jobs: page.map(j => ({ ...j })), next: more && last ? btoa(JSON.stringify([last.created_at, last.id])) : null };
  }
}

/** Let promise chains (several awaits deep) settle. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 30; i++) {
    await Promise.resolve();
  }
}
