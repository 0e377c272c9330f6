import { describe, expect, it } from 'vitest';

import { ApiError, TIMEOUT_MESSAGE } from '../src/api/errors';
import { listStoppable, stopAllMessage, stopJobs } from '../src/panel/commands';
import { JobListModel } from '../src/panel/listmodel';
import { ActionRunner } from '../src/panel/runner';
import { FakeServer, jobN, settle } from './panel-helpers';

async function setup(jobs = [jobN(1, { status: 'running' })]) {
  const server = new FakeServer(jobs);
  const model = new JobListModel(server.transport);
  await model.refresh();
  let now = 1000;
  const runner = new ActionRunner(server.transport, model, { now: () => now, keepMs: 5000 });
  return { server, model, runner, advance: (ms: number) => (now += ms), id: jobs[0].id };
}

describe('ActionRunner', () => {
  it('shows the busy word, then "Stop requested", and applies the answer', async () => {
    const { server, model, runner, id } = await setup();
    server.hold = req => req.path.endsWith('/stop');
    const p = runner.run(id, 'stop');
    expect(runner.status(id)).toMatchObject({ phase: 'busy', message: 'Stopping…' });
    expect(runner.busy(id)).toBe(true);
    // a second click while in flight does nothing
    expect(await runner.run(id, 'stop')).toEqual({ ok: false, message: '' });
    server.release(server.held[0]);
    await p;
    expect(runner.status(id)).toMatchObject({ phase: 'ok', message: 'Stop requested' });
    expect(model.get(id)!.status).toBe('stopping');
  });

  it("shows the server's sentence for a completed job and re-reads it", async () => {
    const { server, model, runner, id } = await setup();
    server.jobs.set(id, { ...jobN(1), status: 'completed', last_seq: 9 }); // it ended; the row is behind
    const out = await runner.run(id, 'stop');
    expect(out.ok).toBe(false);
    expect(runner.status(id)).toMatchObject({ phase: 'error', message: `Job ${id} is already completed; it cannot be stopped.` });
    await settle();
    expect(model.get(id)!.status).toBe('completed');
  });

  it('says when the server did not answer in time, then re-reads the real state', async () => {
    const { server, model, runner, id } = await setup();
    server.hold = req => req.path.endsWith('/stop');
    const p = runner.run(id, 'stop');
    await settle();
    // the server did stop it, but the answer never came
    server.jobs.set(id, { ...jobN(1), status: 'cancelled', last_seq: 12 });
    server.held[0].reject(ApiError.timedOut());
    server.hold = null;
    await p;
    expect(runner.status(id)).toMatchObject({ phase: 'timeout', message: TIMEOUT_MESSAGE });
    await settle();
    expect(model.get(id)!.status).toBe('cancelled');
  });

  it('says a job deleted meanwhile is not found', async () => {
    const { server, runner, id } = await setup([jobN(1)]);
    server.jobs.delete(id);
    await runner.run(id, 'delete');
    expect(runner.status(id)).toMatchObject({ phase: 'gone', message: `No job with id ${id}.` });
  });

  it('removes a deleted job and expires outcomes', async () => {
    const { model, runner, id, advance } = await setup([jobN(1), jobN(2)]);
    await runner.run(id, 'delete');
    expect(model.get(id)).toBeUndefined();
    expect(runner.status(id)).toMatchObject({ message: 'Deleted' });
    expect(runner.nextExpiry()).toBe(1000 + 5000);
    advance(5001);
    expect(runner.status(id)).toBeNull();
    expect(runner.sweep().map(s => s.id)).toEqual([id]);
    expect(runner.nextExpiry()).toBeNull();
  });
});

describe('Stop all', () => {
  it('stops every stoppable job and words the outcome', async () => {
    const server = new FakeServer([
      jobN(1, { status: 'running' }),
      jobN(2, { status: 'pending' }),
      jobN(3, { status: 'completed' }),
      jobN(4, { status: 'paused' })
    ]);
    const jobs = await listStoppable(server.transport);
    expect(jobs.map(j => j.name).sort()).toEqual(['job 1', 'job 2', 'job 4']);
    const seen: unknown[] = [];
    const r = await stopJobs(server.transport, jobs, j => seen.push(j));
    expect(r.requested).toBe(3);
    expect(seen).toHaveLength(3);
    expect(server.jobs.get(jobN(2).id)!.status).toBe('cancelled');
    expect(stopAllMessage(r)).toBe('Stop requested for 3 jobs');
    expect(stopAllMessage({ requested: 1, failed: [{ id: 'x', name: 'n', message: 'gone' }] })).toBe(
      'Stop requested for 1 job; 1 could not be stopped (n: gone)'
    );
  });
});
