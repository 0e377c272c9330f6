import { describe, expect, it } from 'vitest';

import { Backoff } from '../src/api/backoff';
import { ApiError } from '../src/api/errors';
import { JobStream, ListStream, StreamState } from '../src/api/stream';
import { JobEvent } from '../src/api/types';
import { FakeClock, FakeTransport, ev, flush, makeJob } from './helpers';

const ID = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';

function setup(random = () => 0.5) {
  const clock = new FakeClock();
  const transport = new FakeTransport();
  const stream = new JobStream(transport, ID, { clock, random });
  const seen: JobEvent[] = [];
  const states: StreamState[] = [];
  const resets: string[] = [];
  const snapshots: boolean[] = [];
  stream.event.connect(e => seen.push(e));
  stream.stateChanged.connect(s => states.push(s));
  stream.reset.connect(r => resets.push(r));
  stream.snapshot.connect(s => snapshots.push(s.afterReset));
  stream.start();
  return { clock, transport, stream, seen, states, resets, snapshots };
}

describe('JobStream', () => {
  it('connects to the job stream from seq 0 and is live once the snapshot arrives', () => {
    const { transport, stream } = setup();
    expect(transport.sockets).toHaveLength(1);
    expect(transport.last.path).toBe(`jobs/${ID}/stream`);
    expect(transport.last.params).toEqual({ after: 0 });
    expect(stream.state).toBe('connecting');
    transport.last.open();
    expect(stream.connected).toBe(false); // open is not enough: the snapshot makes it current
    transport.last.send({ type: 'snapshot', job: makeJob({ last_seq: 0 }) });
    expect(stream.connected).toBe(true);
    expect(stream.job?.id).toBe(ID);
  });

  it('delivers events in order and drops duplicates and stale seqs', () => {
    const { transport, seen, stream } = setup();
    const s = transport.last.open();
    s.send({ type: 'snapshot', job: makeJob() });
    for (const seq of [1, 2, 2, 3, 1, 4]) {
      s.send(ev(ID, seq, 'log', { line: `l${seq}` }));
    }
    expect(seen.map(e => e.seq)).toEqual([1, 2, 3, 4]);
    expect(seen[0]).toMatchObject({ event: 'log', data: { line: 'l1' } });
    expect(stream.lastSeq).toBe(4);
  });

  it('resumes from the last seq after a drop, with no duplicate from an overlapping replay', () => {
    const { clock, transport, seen, stream, states } = setup();
    const first = transport.last.open();
    first.send({ type: 'snapshot', job: makeJob({ last_seq: 3 }) });
    [1, 2, 3].forEach(n => first.send(ev(ID, n, 'progress', { done: n })));
    first.drop(1006);
    expect(stream.reconnecting).toBe(true);
    expect(states).toContain('reconnecting');
    expect(transport.sockets).toHaveLength(1);
    clock.advance(1000); // the first retry waits 0.5–1 s
    expect(transport.sockets).toHaveLength(2);
    const second = transport.last;
    expect(second.params).toEqual({ after: 3 });
    second.open().send({ type: 'snapshot', job: makeJob({ last_seq: 5 }) });
    expect(stream.connected).toBe(true);
    // a server replaying from further back than asked must not produce duplicates
    [2, 3, 4, 5].forEach(n => second.send(ev(ID, n, 'progress', { done: n })));
    expect(seen.map(e => e.seq)).toEqual([1, 2, 3, 4, 5]);
    second.drop();
    clock.advance(2000); // second retry in a row: 1–2 s
    expect(transport.sockets).toHaveLength(3);
    expect(transport.last.params).toEqual({ after: 5 });
  });

  it('on reset forgets its seq and flags the fresh snapshot', () => {
    const { clock, transport, stream, resets, snapshots, seen } = setup();
    const s = transport.last.open();
    s.send({ type: 'snapshot', job: makeJob({ last_seq: 7 }) });
    [6, 7].forEach(n => s.send(ev(ID, n, 'log', { line: 'old' })));
    s.drop();
    clock.advance(1000);
    const again = transport.last.open();
    expect(again.params).toEqual({ after: 7 });
    // the database was replaced: seq 7 means nothing any more
    again.send({ type: 'reset', reason: "after is beyond the job's last seq" });
    expect(resets).toEqual(["after is beyond the job's last seq"]);
    expect(stream.lastSeq).toBe(0);
    again.send({ type: 'snapshot', job: makeJob({ last_seq: 2 }) });
    expect(snapshots).toEqual([false, true]);
    // events 1 and 2 of the new history are delivered although they are below the old seq
    again.send(ev(ID, 1, 'log', { line: 'new 1' }));
    again.send(ev(ID, 2, 'log', { line: 'new 2' }));
    expect(seen.map(e => e.data.line)).toEqual(['old', 'old', 'new 1', 'new 2']);
    expect(stream.lastSeq).toBe(2);
  });

  it('stops for good on done (no reconnect when the server then closes)', () => {
    const { clock, transport, stream } = setup();
    const done: string[] = [];
    stream.done.connect(s => done.push(s));
    const s = transport.last.open();
    s.send({ type: 'snapshot', job: makeJob({ status: 'cancelled' }) });
    s.send({ type: 'done', status: 'cancelled', last_seq: 0 });
    expect(done).toEqual(['cancelled']);
    expect(stream.state).toBe('done');
    expect(s.closedByClient).toBe(true);
    s.drop(1000);
    clock.advance(60_000);
    expect(transport.sockets).toHaveLength(1);
  });

  it('a deleted job (close 4404) ends the stream as gone', () => {
    const { clock, transport, stream } = setup();
    transport.last.open().send({ type: 'snapshot', job: makeJob() });
    transport.last.drop(4404, 'The job was deleted.');
    expect(stream.state).toBe('gone');
    clock.advance(60_000);
    expect(transport.sockets).toHaveLength(1);
  });

  it('a refused upgrade asks the API why; 404 means gone, anything else retries', async () => {
    const { clock, transport, stream } = setup();
    let status = 503;
    transport.responder = req =>
      req.method === 'GET' && req.path === `jobs/${ID}` ? new ApiError(status, 'nope') : undefined;
    transport.last.drop(1006); // never opened
    await flush();
    expect(stream.state).toBe('reconnecting');
    clock.advance(1000);
    expect(transport.sockets).toHaveLength(2);
    status = 404;
    transport.last.drop(1006);
    await flush();
    expect(stream.state).toBe('gone');
    clock.advance(60_000);
    expect(transport.sockets).toHaveLength(2);
  });

  it('backs off exponentially while the server stays away, then resets after a healthy connection', () => {
    const { clock, transport } = setup(() => 0.999999);
    const delays: number[] = [];
    for (let i = 0; i < 9; i++) {
      transport.last.drop(1006);
      const wait = clock.pending()[0];
      delays.push(wait);
      clock.advance(wait);
    }
    // with r≈1 each delay is the top of its step: 1, 2, 4 … s, capped at 30 s
    expect(delays.map(d => Math.round(d / 100) * 100)).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
    // a connection that stays up for a while resets the backoff
    transport.last.open().send({ type: 'snapshot', job: makeJob() });
    clock.advance(6000);
    transport.last.send({ type: 'heartbeat', last_seq: 0 });
    transport.last.drop(1006);
    const after = clock.pending().filter(d => d <= 30_000);
    expect(Math.min(...after)).toBeLessThanOrEqual(1000);
  });

  it('does not reset the backoff for a connection that drops at once', () => {
    const { clock, transport } = setup(() => 0.999999);
    transport.last.drop();
    clock.advance(1000);
    transport.last.drop();
    clock.advance(2000);
    transport.last.open().send({ type: 'snapshot', job: makeJob() });
    clock.advance(100);
    const before = clock.scheduled.length;
    transport.last.drop(1013);
    const next = clock.scheduled.slice(before);
    expect(Math.max(...next.filter(d => d <= 30_000))).toBeGreaterThanOrEqual(3999); // the third step
  });

  it('treats a silent connection as dead and reconnects', () => {
    const { clock, transport, stream } = setup();
    transport.last.open().send({ type: 'snapshot', job: makeJob() });
    clock.advance(30_000);
    transport.last.send({ type: 'heartbeat', last_seq: 0 }); // heartbeats keep it alive
    clock.advance(30_000);
    expect(transport.sockets).toHaveLength(1);
    clock.advance(6_000); // 35 s of silence
    expect(transport.sockets[0].closedByClient).toBe(true);
    expect(stream.reconnecting).toBe(true);
    clock.advance(1000);
    expect(transport.sockets).toHaveLength(2);
  });

  it('retries at once when the browser comes back online', () => {
    const { clock, transport, stream } = setup(() => 0.999999);
    transport.last.drop();
    clock.advance(1000);
    transport.last.drop();
    expect(transport.sockets).toHaveLength(2);
    window.dispatchEvent(new Event('online'));
    expect(transport.sockets).toHaveLength(3); // no waiting out the 2 s step
    window.dispatchEvent(new Event('online')); // already connecting: no second socket
    expect(transport.sockets).toHaveLength(3);
    stream.close();
    transport.last.drop();
    window.dispatchEvent(new Event('online'));
    expect(transport.sockets).toHaveLength(3);
  });

  it('close() stops everything and ignores late frames', () => {
    const { clock, transport, stream, seen } = setup();
    const s = transport.last.open();
    s.send({ type: 'snapshot', job: makeJob() });
    stream.close();
    expect(stream.state).toBe('closed');
    expect(s.closedByClient).toBe(true);
    s.closedByClient = false; // pretend the socket still delivers
    s.send(ev(ID, 1, 'log', { line: 'late' }));
    expect(seen).toHaveLength(0);
    clock.advance(60_000);
    expect(transport.sockets).toHaveLength(1);
  });
});

describe('Backoff', () => {
  it('stays within 0.5–30 s, grows by steps and resets', () => {
    for (const r of [0, 0.25, 0.5, 0.75, 0.999999]) {
      const b = new Backoff({ random: () => r });
      const delays = Array.from({ length: 12 }, () => b.next());
      for (const d of delays) {
        expect(d).toBeGreaterThanOrEqual(500);
        expect(d).toBeLessThanOrEqual(30_000);
      }
      // each step's window: [step/2, step] with step = 1, 2, 4 … s, capped at 30 s
      delays.forEach((d, n) => {
        const step = Math.min(30_000, 500 * 2 ** (n + 1));
        expect(d).toBeGreaterThanOrEqual(step / 2);
        expect(d).toBeLessThanOrEqual(step);
      });
      b.reset();
      expect(b.next()).toBeLessThanOrEqual(1000);
    }
  });

  it('jitters: different random draws give different delays', () => {
    let i = 0;
    const draws = [0.1, 0.9];
    const b1 = new Backoff({ random: () => draws[i++ % 2] });
    const a = b1.next();
    const b2 = new Backoff({ random: () => 0.9 });
    expect(a).not.toBe(b2.next());
  });

  it('reaches the cap and stays there with jitter, never above it', () => {
    const b = new Backoff();
    let last = 0;
    for (let n = 0; n < 100; n++) {
      last = b.next();
      expect(last).toBeLessThanOrEqual(30_000);
    }
    expect(last).toBeGreaterThanOrEqual(15_000);
  });
});

describe('ListStream', () => {
  it('passes job summaries and deletions, and says opened on every (re)connect', () => {
    const clock = new FakeClock();
    const transport = new FakeTransport();
    const list = new ListStream(transport, { clock, random: () => 0 });
    const jobs: string[] = [];
    const deleted: string[] = [];
    let opened = 0;
    list.job.connect(j => jobs.push(`${j.id}:${j.status}`));
    list.deleted.connect(id => deleted.push(id));
    list.opened.connect(() => opened++);
    list.start();
    expect(transport.last.path).toBe('stream');
    expect(transport.last.params).toEqual({});
    transport.last.open();
    expect(list.connected).toBe(true);
    expect(opened).toBe(1);
    transport.last.send({ type: 'job', job: makeJob({ id: 'j1', status: 'running' }) });
    transport.last.send({ type: 'heartbeat' });
    transport.last.send({ type: 'deleted', id: 'j0' });
    transport.last.send({ type: 'job', job: { nope: true } });
    expect(jobs).toEqual(['j1:running']);
    expect(deleted).toEqual(['j0']);
    transport.last.drop();
    expect(list.reconnecting).toBe(true);
    clock.advance(500);
    transport.last.open();
    expect(opened).toBe(2);
    list.close();
    expect(list.finished).toBe(true);
  });
});
