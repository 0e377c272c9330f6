/**
 * What a host was asked to show, read from untrusted data: a notebook output's MIME data
 * (`{"job_id": "…"}` or `{"view": "jobs"}`) or the widget's traits. A `safe` renderer runs
 * on notebooks someone else wrote, so the id must be a plain token before it goes anywhere
 * near a URL; anything else becomes an error message shown as text.
 */

import { isPlainId, isRecord } from './api/types';

export type ViewTarget =
  | { kind: 'job'; jobId: string }
  | { kind: 'jobs' }
  | { kind: 'error'; message: string };

export function parseTarget(data: unknown): ViewTarget {
  if (!isRecord(data)) {
    return { kind: 'error', message: 'jobctl: this output holds no job.' };
  }
  if (data.view === 'jobs') {
    return { kind: 'jobs' };
  }
  const id = data.job_id;
  if (id === undefined || id === null || id === '') {
    return { kind: 'error', message: 'jobctl: this output names no job.' };
  }
  if (!isPlainId(id)) {
    return { kind: 'error', message: 'jobctl: this output names an invalid job id.' };
  }
  return { kind: 'job', jobId: id };
}

export function sameTarget(a: ViewTarget | null, b: ViewTarget): boolean {
  if (!a || a.kind !== b.kind) {
    return false;
  }
  if (a.kind === 'job' && b.kind === 'job') {
    return a.jobId === b.jobId;
  }
  return a.kind === 'jobs';
}
