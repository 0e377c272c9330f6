import { afterEach, describe, expect, it } from 'vitest';

import { JobsPanel, restoredMessage } from '../src/panel/panel';
import { VirtualList } from '../src/panel/virtual';
import { Confirm, Question } from '../src/view/actions';
import { FakeClock } from './helpers';
import { FakeServer, jobN, settle } from './panel-helpers';

const XSS = '<img src=x onerror=alert(1)>';
const panels: JobsPanel[] = [];
afterEach(() => {
  panels.splice(0).forEach(p => p.dispose());
  document.body.replaceChildren();
});

async function mount(server: FakeServer, confirm?: Confirm) {
  const clock = new FakeClock();
  const opened: string[] = [];
  const announced: string[] = [];
  const panel = new JobsPanel({
    transport: server.transport,
    open: id => opened.push(id),
    announce: m => announced.push(m),
    clock,
    confirm: confirm ?? (async () => true),
    stream: { clock, random: () => 0 }
  });
  panels.push(panel);
  document.body.appendChild(panel.node);
  panel.start();
  await settle();
  panel.renderNow();
  return { panel, clock, opened, announced, root: panel.node };
}

const rows = (root: HTMLElement) => [...root.querySelectorAll<HTMLElement>('[data-jobctl-job]')];
const row = (root: HTMLElement, id: string) => root.querySelector<HTMLElement>(`[data-jobctl-job="${id}"]`)!;
const buttons = (el: HTMLElement) => [...el.querySelectorAll('button')].map(b => b.textContent);

describe('JobsPanel', () => {
  it('renders rows as text with the state badge and the allowed actions', async () => {
    const server = new FakeServer([
      jobN(1, { name: XSS, status: 'running', progress: { done: 2, total: 5, unit: 'epoch', rate: 1, eta_s: 3 } }),
      jobN(2, { status: 'pending', started_at: null }),
      jobN(3, { kind: 'test_batch', status: 'failed', counts: { total: 10, completed: 10, passed: 7, failed: 3, skipped: 0 } })
    ]);
    const { root } = await mount(server);
    expect(rows(root)).toHaveLength(3);
    const r1 = row(root, jobN(1).id);
    expect(r1.querySelector('.jobctl-prow-name')!.textContent).toBe(XSS);
    expect(root.querySelector('img')).toBeNull();
    const badge = r1.querySelector('[data-jobctl-status]')!;
    expect(badge.textContent).toBe('running');
    expect(badge.getAttribute('data-jobctl-status')).toBe('running');
    expect(r1.textContent).toContain('2/5 epoch');
    expect(r1.textContent).toContain('ETA 3s');
    expect(buttons(r1)).toEqual(['Pause', 'Stop', 'Open']);
    expect(buttons(row(root, jobN(2).id))).toEqual(['Start', 'Stop', 'Open']);
    const r3 = row(root, jobN(3).id);
    expect(buttons(r3)).toEqual(['Rerun failed', 'Delete', 'Open']);
    expect(r3.textContent).toContain('7 passed · 3 failed');
    expect(row(root, jobN(2).id).textContent).toContain(jobN(2).id); // the id is shown
  });

  it('says why an initializing job waits, and Starting… when nothing is known', async () => {
    const waiting = 'Waiting for a Dask worker with resources GPU=1.';
    const server = new FakeServer([
      jobN(1, { status: 'initializing', reason: waiting }),
      jobN(2, { status: 'initializing' })
    ]);
    const { root } = await mount(server);
    expect(row(root, jobN(1).id).querySelector('.jobctl-prow-summary')!.textContent).toBe(waiting);
    expect(row(root, jobN(2).id).querySelector('.jobctl-prow-summary')!.textContent).toBe('Starting…');
  });

  it('follows the stream, says Reconnecting… while it is down, and re-reads on reconnect', async () => {
    const server = new FakeServer([jobN(1, { status: 'running', last_seq: 1 })]);
    const { panel, root, clock } = await mount(server);
    const sock = server.transport.last;
    sock.open();
    await settle();
    sock.send({ type: 'job', job: jobN(1, { status: 'stopping', last_seq: 2 }) });
    panel.renderNow();
    expect(row(root, jobN(1).id).querySelector('[data-jobctl-status]')!.textContent).toBe('stopping');
    sock.drop(1006);
    panel.renderNow();
    const conn = root.querySelector('.jobctl-panel-conn') as HTMLElement;
    expect(conn.hidden).toBe(false);
    expect(conn.textContent).toBe('Reconnecting…');
    // while down: the job ended and another was created
    server.jobs.set(jobN(1).id, jobN(1, { status: 'cancelled', last_seq: 5 }));
    server.add(jobN(2, { status: 'running' }));
    const pagesBefore = server.pages.length;
    clock.advance(1000); // backoff (0.5–1 s for the first retry)
    server.transport.last.open();
    await settle();
    panel.renderNow();
    expect(conn.hidden).toBe(true);
    expect(server.pages.length).toBe(pagesBefore + 1);
    expect(rows(root).map(r => r.getAttribute('data-jobctl-job'))).toEqual([jobN(2).id, jobN(1).id]);
    expect(row(root, jobN(1).id).querySelector('[data-jobctl-status]')!.textContent).toBe('cancelled');
  });

  it('announces restored running test batches', async () => {
    const server = new FakeServer([
      jobN(1, { kind: 'test_batch', status: 'running' }),
      jobN(2, { kind: 'test_batch', status: 'running' }),
      jobN(3, { kind: 'test_batch', status: 'pending' }),
      jobN(4, { kind: 'training', status: 'running' })
    ]);
    const { root, announced } = await mount(server);
    expect(restoredMessage(2)).toBe('Restored 2 running test batch(es)');
    expect(root.querySelector('.jobctl-panel-restored')!.textContent).toContain('Restored 2 running test batch(es)');
    expect(announced).toEqual(['Restored 2 running test batch(es)']);
  });

  it('says nothing is restored when nothing runs', async () => {
    const { root, announced } = await mount(new FakeServer([jobN(1)]));
    expect((root.querySelector('.jobctl-panel-restored') as HTMLElement).hidden).toBe(true);
    expect(announced).toEqual([]);
  });

  it('runs a row action with its busy word and outcome', async () => {
    const server = new FakeServer([jobN(1, { status: 'running' })]);
    const { panel, root } = await mount(server);
    server.hold = req => req.path.endsWith('/stop');
    const stop = [...row(root, jobN(1).id).querySelectorAll('button')].find(b => b.textContent === 'Stop')!;
    stop.click();
    panel.renderNow();
    const r = row(root, jobN(1).id);
    expect(r.querySelector('.jobctl-prow-message')!.textContent).toBe('Stopping…');
    expect(([...r.querySelectorAll('button')].find(b => b.textContent === 'Stop') as HTMLButtonElement).disabled).toBe(true);
    server.release(server.held[0]);
    await settle();
    panel.renderNow();
    expect(r.querySelector('.jobctl-prow-message')!.textContent).toBe('Stop requested');
    expect(buttons(r)).toEqual(['Open']); // stopping: no Stop any more
  });

  it('asks before Delete and deletes nothing on a no', async () => {
    const server = new FakeServer([jobN(1, { name: 'old run', status: 'completed' })]);
    const asked: Question[] = [];
    let answer = false;
    const { panel, root } = await mount(server, async q => (asked.push(q), answer));
    const del = () => [...row(root, jobN(1).id).querySelectorAll('button')].find(b => b.textContent === 'Delete')!;
    del().click();
    await settle();
    expect(asked.map(q => q.body)).toEqual(['"old run" and its logs, metrics and results will be removed for good.']);
    expect(server.jobs.has(jobN(1).id)).toBe(true);
    answer = true;
    del().click();
    await settle();
    panel.renderNow();
    expect(server.jobs.has(jobN(1).id)).toBe(false);
    expect(row(root, jobN(1).id)).toBeNull();
  });

  it('filters by state, kind and search from the controls', async () => {
    const server = new FakeServer([
      jobN(1, { name: 'alpha', kind: 'training', status: 'completed' }),
      jobN(2, { name: 'beta', kind: 'test_batch', status: 'failed' }),
      jobN(3, { name: 'gamma', kind: 'training', status: 'running' })
    ]);
    const { panel, root } = await mount(server);
    const state = root.querySelector('select[aria-label="Filter by state"]') as HTMLSelectElement;
    const kind = root.querySelector('select[aria-label="Filter by kind"]') as HTMLSelectElement;
    const search = root.querySelector('input[aria-label="Search jobs"]') as HTMLInputElement;
    const names = () => rows(root).map(r => r.querySelector('.jobctl-prow-name')!.textContent);
    kind.value = 'training';
    kind.dispatchEvent(new Event('change'));
    await settle();
    panel.renderNow();
    expect(names()).toEqual(['gamma', 'alpha']);
    state.value = 'active';
    state.dispatchEvent(new Event('change'));
    await settle();
    panel.renderNow();
    expect(names()).toEqual(['gamma']);
    state.value = '';
    state.dispatchEvent(new Event('change'));
    kind.value = '';
    kind.dispatchEvent(new Event('change'));
    search.value = 'BET';
    search.dispatchEvent(new Event('input'));
    await settle();
    panel.renderNow();
    expect(names()).toEqual(['beta']);
    search.value = 'nothing-like-this';
    search.dispatchEvent(new Event('input'));
    panel.renderNow();
    expect(root.querySelector('.jobctl-panel-empty')!.textContent).toBe('No jobs match these filters.');
  });

  it('opens a job on a row click and on Enter', async () => {
    const server = new FakeServer([jobN(1)]);
    const { root, opened } = await mount(server);
    const r = row(root, jobN(1).id);
    (r.querySelector('.jobctl-prow-name') as HTMLElement).click();
    r.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
    [...r.querySelectorAll('button')].find(b => b.textContent === 'Open')!.click();
    expect(opened).toEqual([jobN(1).id, jobN(1).id, jobN(1).id]);
  });
});

describe('VirtualList', () => {
  it('renders only the rows in view, whatever the length', () => {
    let renders = 0;
    const list = new VirtualList<number>({
      rowHeight: 50,
      label: 'Numbers',
      key: n => String(n),
      create: () => document.createElement('div'),
      render: (el, n) => {
        renders++;
        el.textContent = String(n);
      }
    });
    document.body.appendChild(list.node);
    list.setItems(Array.from({ length: 2000 }, (_, i) => i), true);
    const shown = list.node.querySelectorAll('.jobctl-vrow').length;
    expect(shown).toBeGreaterThan(5);
    expect(shown).toBeLessThan(40);
    expect(renders).toBe(shown);
    expect((list.node.firstChild as HTMLElement).style.height).toBe(`${2000 * 50}px`);
    list.node.scrollTop = 50 * 1500;
    list.update();
    const texts = [...list.node.querySelectorAll('.jobctl-vrow')].map(e => Number(e.textContent));
    expect(texts).toContain(1500);
    expect(texts).not.toContain(0);
    expect(list.node.querySelectorAll('.jobctl-vrow').length).toBeLessThan(40);
    list.dispose();
  });

  it('moves between rows with the arrow keys', () => {
    const list = new VirtualList<number>({
      rowHeight: 50,
      label: 'Numbers',
      key: n => String(n),
      create: () => document.createElement('div'),
      render: (el, n) => (el.textContent = String(n))
    });
    document.body.appendChild(list.node);
    list.setItems([0, 1, 2, 3], true);
    const first = list.rowOf('0')!;
    expect(first.tabIndex).toBe(0);
    first.focus();
    first.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowDown', bubbles: true }));
    expect(document.activeElement).toBe(list.rowOf('1'));
    expect(list.rowOf('1')!.tabIndex).toBe(0);
    expect(first.tabIndex).toBe(-1);
    list.dispose();
  });
});
