import { describe, expect, it } from 'vitest';

import {
  JobListModel,
  STATE_ACTIVE,
  asJob,
  compareJobs,
  fresher,
  matchesSearch,
  queryString
} from '../src/panel/listmodel';
import { FakeServer, jobN, settle } from './panel-helpers';

const ids = (m: JobListModel) => m.visible().map(j => j.name);

function many(n: number, over: (i: number) => object = () => ({})) {
  return Array.from({ length: n }, (_, i) => jobN(i + 1, over(i + 1)));
}

describe('pure helpers', () => {
  it('builds the server query of a filter', () => {
    expect(queryString({ state: '', kind: '' }, 100, null)).toBe('jobs?limit=100');
    expect(queryString({ state: 'running', kind: 'test_batch' }, 5, 'abc')).toBe(
      'jobs?status=running&kind=test_batch&limit=5&cursor=abc'
    );
    expect(queryString({ state: STATE_ACTIVE, kind: '' }, 1, null)).toContain(
      'status=pending%2Cinitializing%2Crunning%2Cpaused%2Cstopping'
    );
  });

  it('orders newest first, then by id', () => {
    const a = jobN(1);
    const b = jobN(2);
    const c = { ...jobN(3), created_at: b.created_at };
    expect([a, b, c].sort(compareJobs).map(j => j.name)).toEqual(['job 3', 'job 2', 'job 1']);
  });

  it('searches the name (as typed), the start of the id, the kind', () => {
    const j = jobN(7, { name: 'ResNet smoke 12', kind: 'training', id: 'ab12cd' + '0'.repeat(26) });
    expect(matchesSearch(j, 'resnet')).toBe(true);
    expect(matchesSearch(j, 'net smoke')).toBe(true);
    expect(matchesSearch(j, 'ab12')).toBe(true);
    expect(matchesSearch(j, 'cd00')).toBe(false); // not the middle of an id
    expect(matchesSearch(jobN(8, { name: 'x', id: 'ff1234' }), '1234')).toBe(false);
    expect(matchesSearch(j, 'training')).toBe(true);
    expect(matchesSearch(j, 'smoke resnet')).toBe(false);
    expect(matchesSearch(j, '   ')).toBe(true);
  });

  it('keeps the fresher copy; a terminal job never goes back', () => {
    const run = jobN(1, { status: 'running', last_seq: 5 });
    expect(fresher(run, { ...run, last_seq: 4 })).toBe(false);
    expect(fresher(run, { ...run, last_seq: 6 })).toBe(true);
    const done = { ...run, status: 'completed', last_seq: 9 };
    expect(fresher(done, { ...run, last_seq: 10 })).toBe(false);
    expect(fresher(run, { ...done, last_seq: 1 })).toBe(true);
  });

  it('rejects what is not a job and fills missing fields', () => {
    expect(asJob(null)).toBeNull();
    expect(asJob({ name: 'x' })).toBeNull();
    const j = asJob({ id: 'abc', counts: 'junk' })!;
    expect(j.counts.failed).toBe(0);
    expect(j.status).toBe('pending');
  });
});

describe('JobListModel paging', () => {
  it('loads the first page, then keyset pages until complete', async () => {
    const server = new FakeServer(many(25));
    const m = new JobListModel(server.transport, { firstPage: 10, nextPage: 10 });
    await m.refresh();
    expect(m.visible()).toHaveLength(10);
    expect(ids(m)[0]).toBe('job 25');
    expect(m.complete).toBe(false);
    await m.loadMore();
    expect(m.visible()).toHaveLength(20);
    await m.loadMore();
    expect(m.visible()).toHaveLength(25);
    expect(m.complete).toBe(true);
    expect(ids(m)[24]).toBe('job 1');
    await m.loadMore(); // nothing more to ask for
    expect(server.pages).toHaveLength(3);
    expect(server.pages[1]).toContain('cursor=');
  });

  it('does not run two page loads at once', async () => {
    const server = new FakeServer(many(30));
    const m = new JobListModel(server.transport, { firstPage: 10, nextPage: 10 });
    await m.refresh();
    await Promise.all([m.loadMore(), m.loadMore(), m.loadMore()]);
    expect(server.pages).toHaveLength(2);
  });

  it('shows active work known from elsewhere even below the loaded window', async () => {
    const old = jobN(1, { status: 'running' });
    const server = new FakeServer([old, ...many(30).slice(1)]);
    const m = new JobListModel(server.transport, { firstPage: 10, nextPage: 10 });
    await m.refresh();
    expect(ids(m)).not.toContain('job 1');
    m.applyJob({ ...old, last_seq: 10 }, true); // the stream says it progressed
    expect(ids(m)).toContain('job 1');
    expect(ids(m)[ids(m).length - 1]).toBe('job 1'); // in its place: the oldest
    // it ends: still shown, someone was watching it
    m.applyJob({ ...old, status: 'completed', last_seq: 11 }, true);
    expect(ids(m)).toContain('job 1');
    // but an old terminal job the stream mentions for the first time waits for its page
    m.applyJob(jobN(2, { last_seq: 99 }), true);
    expect(ids(m)).not.toContain('job 2');
  });
});

describe('JobListModel stream updates', () => {
  it('inserts created jobs at the top and updates rows in place', async () => {
    const server = new FakeServer(many(3));
    const m = new JobListModel(server.transport);
    await m.refresh();
    const changes: boolean[] = [];
    m.changed.connect(c => changes.push(c.rows));
    m.applyJob(jobN(10, { status: 'pending', last_seq: 1 }), true);
    expect(ids(m)).toEqual(['job 10', 'job 3', 'job 2', 'job 1']);
    m.applyJob(jobN(2, { status: 'completed', last_seq: 4, progress: { done: 3, total: 3, unit: 'epoch', rate: null, eta_s: null } }), true);
    expect(m.get(jobN(2).id)!.progress.done).toBe(3);
    expect(m.visible()[2].progress.done).toBe(3); // the visible rows hold the new copy
    expect(changes.length).toBe(2);
  });

  it('ignores stale copies and repeated summaries', async () => {
    const server = new FakeServer([jobN(1, { status: 'running', last_seq: 8 })]);
    const m = new JobListModel(server.transport);
    await m.refresh();
    let n = 0;
    m.changed.connect(() => n++);
    expect(m.applyJob(jobN(1, { status: 'running', last_seq: 7 }), true)).toBe(false);
    expect(m.applyJob(jobN(1, { status: 'running', last_seq: 8 }), true)).toBe(false);
    expect(n).toBe(0);
    expect(m.applyJob({ junk: true }, true)).toBe(false);
  });

  it('removes deleted jobs, and a page read before the deletion does not bring them back', async () => {
    const server = new FakeServer(many(3));
    const m = new JobListModel(server.transport);
    await m.refresh();
    const victim = jobN(2);
    server.hold = req => req.path.startsWith('jobs?');
    const refresh = m.refresh(); // read while the job still exists...
    await settle();
    const page = server.held[0];
    const answer = server.answer(page); // the server's answer, with job 2 in it
    server.hold = null;
    server.jobs.delete(victim.id);
    m.applyDeleted(victim.id); // ...the deletion arrives first...
    expect(ids(m)).toEqual(['job 3', 'job 1']);
    page.resolve(answer); // ...then the stale page
    await refresh;
    expect(ids(m)).toEqual(['job 3', 'job 1']);
    m.applyJob({ ...victim, last_seq: 50 }, true); // nor a late summary of it
    expect(ids(m)).toEqual(['job 3', 'job 1']);
  });

  it('emits state transitions with the state they came from', async () => {
    const server = new FakeServer([jobN(1, { status: 'running', last_seq: 2 })]);
    const m = new JobListModel(server.transport);
    const seen: string[] = [];
    m.transition.connect(t => seen.push(`${t.from}->${t.job.status}`));
    await m.refresh();
    m.applyJob(jobN(1, { status: 'stopping', last_seq: 3 }), true);
    m.applyJob(jobN(1, { status: 'cancelled', last_seq: 5 }), true);
    expect(seen).toEqual(['null->running', 'running->stopping', 'stopping->cancelled']);
  });
});

describe('JobListModel filters', () => {
  it('filters known rows at once and queries the server for the new state/kind', async () => {
    const jobs = many(40, i => ({
      status: i % 4 === 0 ? 'running' : 'completed',
      kind: i % 2 === 0 ? 'test_batch' : 'training'
    }));
    const server = new FakeServer(jobs);
    const m = new JobListModel(server.transport, { firstPage: 10, nextPage: 10 });
    await m.refresh();
    const p = m.setFilter({ state: 'running' });
    // before the server answers, the rows we know that match are shown
    expect(m.visible().every(j => j.status === 'running')).toBe(true);
    expect(m.visible().length).toBeGreaterThan(0);
    await p;
    expect(server.pages[server.pages.length - 1]).toContain('status=running');
    expect(m.visible().every(j => j.status === 'running')).toBe(true);
    expect(m.visible()).toHaveLength(10); // all 10 running jobs (40/4)
    expect(m.complete).toBe(true);
    await m.setFilter({ state: '', kind: 'test_batch' });
    expect(m.visible().every(j => j.kind === 'test_batch')).toBe(true);
    await m.setFilter({ kind: '' });
    // search is local: no new page for it
    const pagesBefore = server.pages.length;
    await m.setFilter({ search: 'job 33' });
    expect(server.pages.length).toBe(pagesBefore);
    expect(ids(m)).toEqual(['job 33']);
  });

  it('drops the answer of a query that was replaced meanwhile', async () => {
    const server = new FakeServer(many(20, i => ({ status: i % 2 ? 'failed' : 'completed' })));
    const m = new JobListModel(server.transport, { firstPage: 5, nextPage: 5 });
    await m.refresh();
    server.hold = req => req.path.includes('status=failed');
    const first = m.setFilter({ state: 'failed' });
    await settle();
    const slow = server.held[0];
    server.hold = null;
    await m.setFilter({ state: 'completed' });
    server.release(slow);
    await first;
    expect(m.visible().every(j => j.status === 'completed')).toBe(true);
  });

  it('a row whose state no longer matches leaves the filtered list', async () => {
    const server = new FakeServer([jobN(1, { status: 'running' }), jobN(2, { status: 'running' })]);
    const m = new JobListModel(server.transport);
    await m.setFilter({ state: STATE_ACTIVE });
    expect(m.visible()).toHaveLength(2);
    m.applyJob(jobN(2, { status: 'completed', last_seq: 9 }), true);
    expect(ids(m)).toEqual(['job 1']);
  });
});

describe('JobListModel reconnect (refresh from the top)', () => {
  it('dedups rows the stream and the refresh both bring, and drops jobs deleted while down', async () => {
    const server = new FakeServer(many(30));
    const m = new JobListModel(server.transport, { firstPage: 10, nextPage: 10 });
    await m.refresh();
    await m.loadMore(); // 20 shown
    // while the stream was down: two jobs created, one deleted, one changed
    server.add(jobN(31, { status: 'running' }));
    server.add(jobN(32, { status: 'pending' }));
    server.jobs.delete(jobN(25).id);
    server.add(jobN(20, { status: 'failed', last_seq: 9 }));
    // the stream comes back and also sends job 31's summary (before the refresh lands)
    m.applyJob(jobN(31, { status: 'running' }), true);
    await m.refresh();
    const names = ids(m);
    expect(new Set(names).size).toBe(names.length); // no duplicates
    expect(names.slice(0, 2)).toEqual(['job 32', 'job 31']);
    expect(names).not.toContain('job 25');
    expect(m.get(jobN(20).id)!.status).toBe('failed');
    // everything shown before is still shown (the refresh read down to the old horizon)
    for (let i = 11; i <= 30; i++) {
      if (i !== 25) {
        expect(names).toContain(`job ${i}`);
      }
    }
  });

  it('keeps a row the stream updated while the refresh was in flight', async () => {
    const server = new FakeServer(many(5));
    const m = new JobListModel(server.transport);
    await m.refresh();
    server.hold = req => req.path.startsWith('jobs?');
    const p = m.refresh();
    await settle();
    const page = server.held[0];
    const answer = server.answer(page); // read before job 6 existed
    server.hold = null;
    const fresh = jobN(6, { status: 'running' });
    server.add(fresh);
    m.applyJob(fresh, true); // the stream announces it before the page lands
    page.resolve(answer);
    await p;
    expect(ids(m)[0]).toBe('job 6');
  });

  it('reports a failed page and recovers on the next one', async () => {
    const server = new FakeServer(many(3));
    const m = new JobListModel(server.transport);
    const errors: string[] = [];
    m.failed.connect(e => errors.push(e));
    server.hold = () => true;
    const p = m.refresh();
    await settle();
    server.held[0].reject(new Error('The server could not be reached'));
    await p;
    expect(m.error).toBe('The server could not be reached');
    server.hold = null;
    await m.refresh();
    expect(m.error).toBe('');
    expect(errors).toEqual(['The server could not be reached', '']);
    expect(m.visible()).toHaveLength(3);
  });
});
