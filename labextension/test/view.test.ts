import { afterEach, describe, expect, it } from 'vitest';

import { ApiError, TIMEOUT_MESSAGE } from '../src/api/errors';
import { Question } from '../src/view/actions';
import { JobView, JobViewOptions } from '../src/view/JobView';
import { JobsListView } from '../src/view/JobsListView';
import { FakeClock, FakeTransport, ev, flush, makeJob } from './helpers';

const ID = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
const XSS = '<img src=x onerror=alert(1)>';

const views: { dispose(): void }[] = [];
afterEach(() => {
  views.splice(0).forEach(v => v.dispose());
  document.body.replaceChildren();
});

function mount(transport = new FakeTransport(), jobId = ID, options: JobViewOptions = {}) {
  const clock = new FakeClock();
  const view = new JobView(transport, jobId, { clock, schedule: f => f(), chart: false, stream: { clock, random: () => 0 }, ...options });
  views.push(view);
  document.body.appendChild(view.node);
  return { view, transport, clock, root: view.node };
}

const q = (root: Element, sel: string) => root.querySelector(sel) as HTMLElement | null;
const badge = (root: Element) => q(root, '.jobctl-badge')!;
const buttonNames = (root: Element) => [...root.querySelectorAll('button')].map(b => b.textContent);
const button = (root: Element, name: string) =>
  [...root.querySelectorAll('button')].find(b => b.textContent === name) as HTMLButtonElement | undefined;
const notice = (root: Element) => q(root, '.jobctl-notice')!;

describe('JobView DOM contract', () => {
  it('root, badge and progress', () => {
    const { root, transport } = mount();
    expect(root.classList.contains('jobctl-job')).toBe(true);
    expect(root.getAttribute('data-jobctl-job')).toBe(ID);
    expect(root.textContent).toContain(`Loading job ${ID}`);
    transport.last.open().send({
      type: 'snapshot',
      job: makeJob({ name: 'train-1', last_seq: 0, progress: { done: 12, total: 30, unit: 'epoch', rate: 2.1, eta_s: 9 } })
    });
    expect(badge(root).textContent).toBe('running');
    expect(badge(root).getAttribute('data-jobctl-status')).toBe('running');
    expect(q(root, '.jobctl-name')!.textContent).toBe('train-1');
    expect(q(root, '.jobctl-kind')!.textContent).toBe('training');
    expect(q(root, '.jobctl-progress-text')!.textContent).toBe('12/30 epoch · 2.1 epoch/s · ETA 9s');
    expect(root.textContent).toContain(ID);
    // a live progress event moves it on
    transport.last.send(ev(ID, 1, 'progress', { done: 13, total: 30, unit: 'epoch', rate: 2.0, eta_s: 8.5 }));
    expect(q(root, '.jobctl-progress-text')!.textContent).toBe('13/30 epoch · 2.0 epoch/s · ETA 9s');
    expect(q(root, '.jobctl-progress-track')!.getAttribute('aria-valuenow')).toBe('43');
  });

  it('a replay below the snapshot seq never moves the state backwards', () => {
    const { root, transport } = mount();
    const s = transport.last.open();
    s.send({ type: 'snapshot', job: makeJob({ last_seq: 3, progress: { done: 3, total: 3, unit: 'epoch', rate: null, eta_s: null } }) });
    s.send(ev(ID, 1, 'progress', { done: 1, total: 3, unit: 'epoch' }));
    s.send(ev(ID, 2, 'log', { line: 'epoch 1' }));
    s.send(ev(ID, 3, 'progress', { done: 2, total: 3, unit: 'epoch' }));
    expect(q(root, '.jobctl-progress-text')!.textContent).toBe('3/3 epoch');
    expect(q(root, '.jobctl-log')!.textContent).toBe('epoch 1\n');
  });

  it('shows only the buttons of the current state', () => {
    const { root, transport } = mount();
    const s = transport.last.open();
    s.send({ type: 'snapshot', job: makeJob({ status: 'pending', started_at: null }) });
    expect(buttonNames(root)).toEqual(['Start', 'Stop']);
    s.send(ev(ID, 1, 'status', { status: 'initializing', from: 'pending' }));
    expect(buttonNames(root)).toEqual(['Stop']);
    s.send(ev(ID, 2, 'status', { status: 'running', from: 'initializing' }));
    expect(buttonNames(root)).toEqual(['Pause', 'Stop']);
    s.send(ev(ID, 3, 'status', { status: 'paused', from: 'running' }));
    expect(buttonNames(root)).toEqual(['Resume', 'Stop']);
    s.send(ev(ID, 4, 'status', { status: 'stopping', from: 'paused' }));
    expect(buttonNames(root)).toEqual([]);
    s.send(ev(ID, 5, 'status', { status: 'cancelled', from: 'stopping' }));
    expect(buttonNames(root)).toEqual(['Delete']);
    expect(badge(root).textContent).toBe('cancelled');
  });

  it('Stop: disabled with Stopping…, then Stop requested, then the final state', async () => {
    const { root, transport } = mount();
    transport.last.open().send({ type: 'snapshot', job: makeJob({ last_seq: 4 }) });
    button(root, 'Stop')!.click();
    expect(button(root, 'Stop')!.disabled).toBe(true);
    expect(button(root, 'Pause')!.disabled).toBe(true);
    expect(notice(root).textContent).toBe('Stopping…');
    const req = transport.requests.find(r => r.path === `jobs/${ID}/stop`)!;
    expect(req.method).toBe('POST');
    req.resolve(makeJob({ status: 'stopping', last_seq: 5 }));
    await flush();
    expect(notice(root).textContent).toBe('Stop requested');
    expect(badge(root).textContent).toBe('stopping');
    expect(button(root, 'Stop')).toBeUndefined();
    transport.last.send(ev(ID, 5, 'status', { status: 'stopping', from: 'running' }));
    transport.last.send(ev(ID, 6, 'log', { line: '[STOP] Stop request received', stream: 'jobctl' }));
    transport.last.send(ev(ID, 7, 'status', { status: 'cancelled', from: 'stopping' }));
    expect(badge(root).textContent).toBe('cancelled');
    expect(badge(root).getAttribute('data-jobctl-status')).toBe('cancelled');
    expect(notice(root).textContent).toBe('Job cancelled');
    expect(buttonNames(root)).toEqual(['Delete']);
  });

  it("shows the server's sentence when an action is refused, and re-reads the job", async () => {
    const { root, transport } = mount();
    transport.last.open().send({ type: 'snapshot', job: makeJob() });
    transport.responder = req =>
      req.path.endsWith('/pause')
        ? new ApiError(409, `Job ${ID} is completed and cannot become paused.`, { state: 'completed' })
        : req.method === 'GET'
          ? makeJob({ status: 'completed', last_seq: 9, finished_at: '2026-12-01T10:01:00Z', exit_code: 0 })
          : undefined;
    button(root, 'Pause')!.click();
    await flush();
    expect(notice(root).textContent).toBe(`Job ${ID} is completed and cannot become paused.`);
    expect(notice(root).getAttribute('role')).toBe('alert');
    expect(transport.requests.some(r => r.method === 'GET' && r.path === `jobs/${ID}`)).toBe(true);
    expect(badge(root).textContent).toBe('completed');
    expect(root.textContent).toContain('exit code 0');
  });

  it('a request that times out says so and re-reads the job', async () => {
    const { root, transport } = mount();
    transport.last.open().send({ type: 'snapshot', job: makeJob() });
    transport.responder = req =>
      req.path.endsWith('/stop') ? ApiError.timedOut() : req.method === 'GET' ? makeJob({ status: 'stopping', last_seq: 2 }) : undefined;
    button(root, 'Stop')!.click();
    await flush();
    expect(notice(root).textContent).toBe(TIMEOUT_MESSAGE);
    expect(notice(root).textContent).toBe('The server did not answer in time');
    expect(transport.requests.filter(r => r.method === 'GET')).toHaveLength(1);
    expect(badge(root).textContent).toBe('stopping');
  });

  it('Reconnecting… while the stream is down, gone once live again', () => {
    const { root, transport, clock } = mount();
    transport.last.open().send({ type: 'snapshot', job: makeJob() });
    const conn = q(root, '.jobctl-conn')!;
    expect(conn.hidden).toBe(true);
    transport.last.drop(1006);
    expect(conn.hidden).toBe(false);
    expect(conn.textContent).toBe('Reconnecting…');
    clock.advance(1000);
    transport.last.open();
    expect(conn.hidden).toBe(false); // not current until the snapshot
    transport.last.send({ type: 'snapshot', job: makeJob() });
    expect(conn.hidden).toBe(true);
  });

  it('on reset drops its local events and rebuilds from the fresh snapshot', () => {
    const { root, transport, clock } = mount();
    const s = transport.last.open();
    s.send({ type: 'snapshot', job: makeJob({ last_seq: 2 }) });
    s.send(ev(ID, 1, 'log', { line: 'old history 1' }));
    s.send(ev(ID, 2, 'log', { line: 'old history 2' }));
    s.drop();
    clock.advance(1000);
    const again = transport.last.open();
    again.send({ type: 'reset', reason: 'pruned' });
    again.send({ type: 'snapshot', job: makeJob({ last_seq: 1, name: 'fresh' }) });
    again.send(ev(ID, 1, 'log', { line: 'new history' }));
    expect(q(root, '.jobctl-log')!.textContent).toBe('new history\n');
    expect(q(root, '.jobctl-name')!.textContent).toBe('fresh');
  });

  it('keeps the log tail bounded', () => {
    const { root, transport } = mount();
    const s = transport.last.open();
    s.send({ type: 'snapshot', job: makeJob() });
    for (let n = 1; n <= 620; n++) {
      s.send(ev(ID, n, 'log', { line: `line ${n}` }));
    }
    const lines = root.querySelectorAll('.jobctl-log-line');
    expect(lines).toHaveLength(500);
    expect(lines[0].textContent).toBe('line 121\n');
    expect(root.textContent).toContain('last 500 of 620 lines');
  });

  it('Rerun failed switches the plain view to the new job', async () => {
    const { root, transport, view } = mount();
    transport.last.open().send({
      type: 'snapshot',
      job: makeJob({ kind: 'test_batch', status: 'completed', counts: { total: 3, completed: 3, passed: 1, failed: 2, skipped: 0 } })
    });
    expect(buttonNames(root)).toEqual(['Rerun failed', 'Delete']);
    transport.responder = req => (req.path.endsWith('/rerun') ? makeJob({ id: 'newjob123', kind: 'test_batch', status: 'initializing' }) : undefined);
    button(root, 'Rerun failed')!.click();
    await flush();
    expect(transport.requests.find(r => r.path === `jobs/${ID}/rerun`)!.body).toEqual({ only: 'failed' });
    expect(view.jobId).toBe('newjob123');
    expect(root.getAttribute('data-jobctl-job')).toBe('newjob123');
    expect(transport.last.path).toBe('jobs/newjob123/stream');
    expect(transport.sockets[0].closedByClient).toBe(true);
  });

  it('an initializing job says why it waits; a running one keeps its reason to itself', () => {
    const { root, transport } = mount();
    const why = 'Waiting for a Dask worker with GPU=1: none of the cluster\'s 2 worker(s) has it yet.';
    const s = transport.last.open();
    s.send({ type: 'snapshot', job: makeJob({ status: 'initializing', reason: why }) });
    const shown = root.querySelector<HTMLElement>('.jobctl-reason')!;
    expect(shown.hidden).toBe(false);
    expect(shown.textContent).toBe(why);
    s.send({ type: 'snapshot', job: makeJob({ status: 'running', reason: 'half-way' }) });
    expect(root.querySelector<HTMLElement>('.jobctl-reason')!.hidden).toBe(true);
  });

  it('Delete asks first; a no keeps the job, a yes removes the buttons and says so', async () => {
    const asked: Question[] = [];
    let answer = false;
    const confirm = async (question: Question) => (asked.push(question), answer);
    const { root, transport } = mount(new FakeTransport(), ID, { confirm });
    transport.last.open().send({ type: 'snapshot', job: makeJob({ name: XSS, status: 'failed', reason: 'The worker exited with code 1.' }) });
    expect(root.textContent).toContain('The worker exited with code 1.');
    transport.responder = req => (req.method === 'DELETE' ? null : undefined);
    button(root, 'Delete')!.click();
    await flush();
    expect(asked).toHaveLength(1);
    expect(asked[0]).toMatchObject({ title: 'Delete this job?', accept: 'Delete' });
    expect(asked[0].body).toContain(XSS); // the name as text, in the question
    expect(transport.requests.filter(r => r.method === 'DELETE')).toHaveLength(0);
    expect(buttonNames(root)).toEqual(['Delete']);
    answer = true;
    button(root, 'Delete')!.click();
    await flush();
    expect(transport.requests.filter(r => r.method === 'DELETE')).toHaveLength(1);
    await flush();
    expect(notice(root).textContent).toBe('Deleted');
    expect(buttonNames(root)).toEqual([]);
  });
});

describe('asking inside the view (no JupyterLab dialogs)', () => {
  it('asks before Delete with the name as text; Cancel and Escape say no, Delete goes ahead', async () => {
    const { root, transport } = mount();
    transport.last.open().send({ type: 'snapshot', job: makeJob({ name: XSS, status: 'completed' }) });
    transport.responder = req => (req.method === 'DELETE' ? null : undefined);
    const dialog = () => q(root, '[role="alertdialog"]');
    const deletes = () => transport.requests.filter(r => r.method === 'DELETE').length;
    const inDialog = (name: string) => [...dialog()!.querySelectorAll('button')].find(b => b.textContent === name)!;

    button(root, 'Delete')!.click();
    expect(dialog()!.getAttribute('aria-label')).toBe('Delete this job?');
    expect(dialog()!.textContent).toContain(`"${XSS}" and its logs`);
    expect(root.querySelector('img')).toBeNull();
    expect(document.activeElement).toBe(inDialog('Cancel')); // Enter is the safe answer
    inDialog('Cancel').click();
    await flush();
    expect(dialog()).toBeNull();
    expect(deletes()).toBe(0);

    button(root, 'Delete')!.click();
    dialog()!.dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape', bubbles: true }));
    await flush();
    expect(dialog()).toBeNull();
    expect(deletes()).toBe(0);

    button(root, 'Delete')!.click();
    inDialog('Delete').click();
    await flush();
    expect(dialog()).toBeNull();
    expect(deletes()).toBe(1);
    expect(notice(root).textContent).toBe('Deleted');
  });
});

describe('test batch results', () => {
  it('counts, failures first with their message, filter by outcome', () => {
    const { root, transport } = mount();
    const s = transport.last.open();
    s.send({ type: 'snapshot', job: makeJob({ kind: 'test_batch', last_seq: 0 }) });
    s.send(ev(ID, 1, 'collection', { total: 4 }));
    s.send(ev(ID, 2, 'result', { nodeid: 't.py::a', outcome: 'passed', duration: 0.01 }));
    s.send(ev(ID, 3, 'result', { nodeid: 't.py::b', outcome: 'failed', duration: 0.2, message: 'assert 1 == 2' }));
    s.send(ev(ID, 4, 'result', { nodeid: 't.py::c', outcome: 'skipped', duration: 0, message: 'no gpu' }));
    const counts = q(root, '.jobctl-counts')!.textContent;
    expect(counts).toContain('1 passed');
    expect(counts).toContain('1 failed');
    expect(counts).toContain('1 skipped');
    expect(counts).toContain('3 of 4 run');
    const ids = [...root.querySelectorAll('.jobctl-nodeid')].map(e => e.textContent);
    expect(ids).toEqual(['t.py::b', 't.py::c', 't.py::a']);
    expect(q(root, '.jobctl-result-message')!.textContent).toBe('assert 1 == 2');
    const select = root.querySelector('select[aria-label="Filter by outcome"]') as HTMLSelectElement;
    expect(select).not.toBeNull();
    select.value = 'passed';
    select.dispatchEvent(new Event('change'));
    expect([...root.querySelectorAll('.jobctl-nodeid')].map(e => e.textContent)).toEqual(['t.py::a']);
    s.send(ev(ID, 5, 'summary', { counts: { passed: 2, failed: 1, skipped: 1, error: 0, xfailed: 0, xpassed: 0 }, exit_code: 1 }));
    expect(q(root, '.jobctl-counts')!.textContent).toContain('4 total');
  });
});

describe('text only', () => {
  it('renders a hostile name, log line, test id and message literally', () => {
    const { root, transport } = mount();
    const s = transport.last.open();
    s.send({
      type: 'snapshot',
      job: makeJob({ name: XSS, kind: 'test_batch', metrics: { [XSS]: 1 }, reason: XSS })
    });
    s.send(ev(ID, 1, 'log', { line: XSS, stream: 'stderr' }));
    s.send(ev(ID, 2, 'result', { nodeid: `t.py::${XSS}`, outcome: 'failed', message: XSS }));
    s.send(ev(ID, 3, 'status', { status: XSS, from: 'running' }));
    expect(root.querySelector('img')).toBeNull();
    expect(document.querySelector('img')).toBeNull();
    expect(q(root, '.jobctl-name')!.textContent).toBe(XSS);
    expect(q(root, '.jobctl-log')!.textContent).toBe(`${XSS}\n`);
    expect(q(root, '.jobctl-nodeid')!.textContent).toBe(`t.py::${XSS}`);
    expect(q(root, '.jobctl-result-message')!.textContent).toBe(XSS);
    expect(badge(root).textContent).toBe(XSS);
    expect([...root.querySelectorAll('*')].map(e => e.tagName)).not.toContain('IMG');
    // as text nodes it serialises escaped (title attributes keep it verbatim, as attributes do)
    expect(root.innerHTML).toContain('&lt;img src=x onerror=alert(1)&gt;');
  });

  it('a hostile job id is used as an encoded path segment only', () => {
    const transport = new FakeTransport();
    mount(transport, 'x/../../evil');
    expect(transport.last.path).toBe('jobs/x%2F..%2F..%2Fevil/stream');
  });
});

describe('JobsListView', () => {
  it('lists active jobs, follows the list stream and opens a job in place', async () => {
    const clock = new FakeClock();
    const transport = new FakeTransport();
    transport.responder = req =>
      req.path.startsWith('jobs?') ? { jobs: [makeJob({ id: 'j1', name: XSS, created_at: '2026-12-01T10:00:00Z' })], next: null } : undefined;
    const list = new JobsListView(transport, { schedule: f => f(), stream: { clock, random: () => 0 }, jobView: { chart: false, schedule: f => f(), clock } });
    views.push(list);
    document.body.appendChild(list.node);
    await flush();
    expect(transport.requests[0].path).toBe('jobs?status=pending,initializing,running,paused,stopping&limit=200');
    const rows = () => [...list.node.querySelectorAll('.jobctl-row')].map(r => r.getAttribute('data-jobctl-job'));
    expect(rows()).toEqual(['j1']);
    expect(list.node.querySelector('img')).toBeNull();
    const s = transport.last.open();
    s.send({ type: 'job', job: makeJob({ id: 'j2', created_at: '2026-12-01T11:00:00Z', status: 'pending' }) });
    s.send({ type: 'job', job: makeJob({ id: 'old', status: 'completed' }) }); // never active here
    expect(rows()).toEqual(['j2', 'j1']);
    s.send({ type: 'job', job: makeJob({ id: 'j1', name: XSS, status: 'completed', last_seq: 9 }) });
    expect(list.node.querySelector('[data-jobctl-job="j1"] .jobctl-badge')!.textContent).toBe('completed');
    s.send({ type: 'deleted', id: 'j1' });
    expect(rows()).toEqual(['j2']);
    (list.node.querySelector('.jobctl-row-open') as HTMLButtonElement).click();
    const view = list.node.querySelector('.jobctl-job[data-jobctl-job="j2"]');
    expect(view).not.toBeNull();
    expect(transport.last.path).toBe('jobs/j2/stream');
  });
});
