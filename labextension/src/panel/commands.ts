/**
 * The panel's commands (palette and launcher): new training job, new test batch, open the
 * jobs panel, stop all running jobs (after a confirmation), open one job.
 */

import { Transport, errorMessage, jobPath } from '../api/transport';
import { Job, JobList, isRecord } from '../api/types';

export const CommandIDs = {
  newTraining: 'jobctl:new-training',
  newTestBatch: 'jobctl:new-test-batch',
  openPanel: 'jobctl:open-panel',
  stopAll: 'jobctl:stop-all',
  openJob: 'jobctl:open-job'
} as const;

export const COMMAND_LABELS: Record<string, string> = {
  [CommandIDs.newTraining]: 'New training job',
  [CommandIDs.newTestBatch]: 'New test batch',
  [CommandIDs.openPanel]: 'Open the jobs panel',
  [CommandIDs.stopAll]: 'Stop all running jobs',
  [CommandIDs.openJob]: 'Open job'
};

export const PALETTE_CATEGORY = 'Jobs';

/** States "Stop all" stops (a stopping job is on its way already). */
export const STOP_ALL_STATES = ['pending', 'initializing', 'running', 'paused'];

export interface StopAllResult {
  requested: number;
  failed: { id: string; name: string; message: string }[];
}

/** Every job the server has in a stoppable state (all pages). */
export async function listStoppable(transport: Transport): Promise<Job[]> {
  const out: Job[] = [];
  let cursor: string | null = null;
  for (let guard = 0; guard < 100; guard++) {
    const q = new URLSearchParams({ status: STOP_ALL_STATES.join(','), limit: '1000' });
    if (cursor) {
      q.set('cursor', cursor);
    }
    const page: JobList = await transport.request<JobList>('GET', `jobs?${q.toString()}`);
    if (isRecord(page) && Array.isArray(page.jobs)) {
      out.push(...page.jobs.filter(j => isRecord(j) && typeof j.id === 'string'));
    }
    cursor = isRecord(page) && typeof page.next === 'string' && page.next ? page.next : null;
    if (!cursor) {
      break;
    }
  }
  return out;
}

/** Ask every given job to stop, a few requests at a time. */
export async function stopJobs(
  transport: Transport,
  jobs: Job[],
  onStopped?: (job: unknown) => void,
  concurrency = 4
): Promise<StopAllResult> {
  const result: StopAllResult = { requested: 0, failed: [] };
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const job = jobs[next++];
      try {
        const answer = await transport.request<unknown>('POST', jobPath(job.id, 'stop'));
        result.requested += 1;
        onStopped?.(answer);
      } catch (err) {
        result.failed.push({ id: job.id, name: job.name || job.id, message: errorMessage(err) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, worker));
  return result;
}

export function stopAllMessage(r: StopAllResult): string {
  const n = r.requested;
  let text = n === 0 && !r.failed.length ? 'No running jobs to stop' : `Stop requested for ${n} job${n === 1 ? '' : 's'}`;
  if (r.failed.length) {
    const first = r.failed[0];
    text += `; ${r.failed.length} could not be stopped (${first.name}: ${first.message})`;
  }
  return text;
}
