import { afterEach, describe, expect, it, vi } from 'vitest';

import { CommModel, CommTransport } from '../src/api/comm';
import { ApiError, TIMEOUT_MESSAGE } from '../src/api/errors';
import { PageTransport, readPageConfig } from '../src/api/page';
import { parseTarget } from '../src/target';
import { rejected } from './helpers';

afterEach(() => {
  vi.useRealTimers();
  document.body.replaceChildren();
  document.cookie = '_xsrf=; expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/';
});

interface Call {
  url: string;
  init: RequestInit;
}

function fakeFetch(status: number, body: unknown, calls: Call[]) {
  return async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    return new Response(body === undefined ? null : JSON.stringify(body), {
      status,
      headers: { 'Content-Type': 'application/json' }
    });
  };
}

const headers = (c: Call) => c.init.headers as Record<string, string>;

describe('PageTransport', () => {
  it('reads PageConfig from the page', () => {
    const el = document.createElement('script');
    el.id = 'jupyter-config-data';
    el.type = 'application/json';
    el.textContent = JSON.stringify({ baseUrl: '/user/ada/', token: 'abc', wsUrl: '' });
    document.body.appendChild(el);
    expect(readPageConfig(document)).toEqual({ baseUrl: '/user/ada/', token: 'abc', wsUrl: undefined });
    el.textContent = 'not json';
    expect(readPageConfig(document)).toBeNull();
    el.remove();
    expect(readPageConfig(document)).toBeNull();
  });

  it('token: Authorization header, URLs under base_url, ws URL with ?token=', async () => {
    const calls: Call[] = [];
    const t = new PageTransport({
      config: { baseUrl: '/user/ada/', token: 'abc' },
      pageUrl: 'https://hub.example/user/ada/lab',
      fetch: fakeFetch(200, { id: 'j1' }, calls)
    });
    expect(await t.request('GET', 'jobs/j1')).toEqual({ id: 'j1' });
    expect(calls[0].url).toBe('https://hub.example/user/ada/jobctl/api/jobs/j1');
    expect(headers(calls[0]).Authorization).toBe('token abc');
    expect(calls[0].init.credentials).toBe('same-origin');
    let opened = '';
    class WS {
      onopen: unknown = null;
      onmessage: unknown = null;
      onclose: unknown = null;
      constructor(url: string) {
        opened = url;
      }
      close() {}
    }
    const t2 = new PageTransport({
      config: { baseUrl: '/user/ada/', token: 'a b' },
      pageUrl: 'https://hub.example/user/ada/lab',
      WebSocket: WS as unknown as typeof WebSocket
    });
    t2.openStream('jobs/j1/stream', { after: 7 }, { open() {}, message() {}, close() {} }).close();
    expect(opened).toBe('wss://hub.example/user/ada/jobctl/api/jobs/j1/stream?after=7&token=a+b');
  });

  it('no token (JupyterHub): cookie + X-XSRFToken on POST, not on GET', async () => {
    document.cookie = '_xsrf=2|abc%7Cdef; path=/';
    const calls: Call[] = [];
    const t = new PageTransport({ config: { baseUrl: '/', token: '' }, pageUrl: 'http://h/lab', fetch: fakeFetch(202, { status: 'stopping' }, calls) });
    await t.request('POST', 'jobs/j1/stop');
    await t.request('GET', 'jobs/j1');
    expect(headers(calls[0]).Authorization).toBeUndefined();
    expect(headers(calls[0])['X-XSRFToken']).toBe('2|abc|def');
    expect(headers(calls[1])['X-XSRFToken']).toBeUndefined();
  });

  it("errors carry the server's sentence, status and field", async () => {
    const t = new PageTransport({
      config: { baseUrl: '/', token: 't' },
      pageUrl: 'http://h/',
      fetch: fakeFetch(400, { error: 'spec.config.epochs must be a positive integer.', field: 'spec.config.epochs' }, [])
    });
    const err = await rejected(t.request('POST', 'jobs', { kind: 'training' }));
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(400);
    expect(err.message).toBe('spec.config.epochs must be a positive integer.');
    expect(err.field).toBe('spec.config.epochs');
    const t2 = new PageTransport({ config: { baseUrl: '/', token: 't' }, pageUrl: 'http://h/', fetch: fakeFetch(204, undefined, []) });
    expect(await t2.request('DELETE', 'jobs/x')).toBeUndefined();
  });

  it('a request not answered within the timeout rejects with the timeout sentence', async () => {
    vi.useFakeTimers();
    let signal: AbortSignal | undefined;
    const t = new PageTransport({
      config: { baseUrl: '/', token: 't' },
      pageUrl: 'http://h/',
      fetch: (_url, init) => {
        signal = init.signal ?? undefined;
        return new Promise(() => undefined); // never answers
      }
    });
    const p = rejected(t.request('POST', 'jobs/j1/stop'));
    await vi.advanceTimersByTimeAsync(9_999);
    await vi.advanceTimersByTimeAsync(2);
    const err = await p;
    expect(err).toBeInstanceOf(ApiError);
    expect(err.message).toBe('The server did not answer in time');
    expect(err.message).toBe(TIMEOUT_MESSAGE);
    expect(err.timeout).toBe(true);
    expect(signal?.aborted).toBe(true);
  });
});

class FakeModel implements CommModel {
  sent: Record<string, unknown>[] = [];
  private handlers: ((c: unknown) => void)[] = [];
  send(content: Record<string, unknown>) {
    this.sent.push(content);
  }
  on(_name: 'msg:custom', h: (c: unknown) => void) {
    this.handlers.push(h);
  }
  off(_name: 'msg:custom', h?: (c: unknown) => void) {
    this.handlers = this.handlers.filter(x => x !== h);
  }
  deliver(content: unknown) {
    this.handlers.forEach(h => h(content));
  }
  get listening() {
    return this.handlers.length;
  }
}

describe('CommTransport (relay through the kernel)', () => {
  it('requests and responses by id', async () => {
    const model = new FakeModel();
    const t = new CommTransport(model);
    const p1 = t.request('GET', 'jobs/j1');
    const p2 = t.request('POST', 'jobs/j1/stop', { x: 1 });
    expect(model.sent).toEqual([
      { jobctl: 'request', id: 1, method: 'GET', path: 'jobs/j1', body: null },
      { jobctl: 'request', id: 2, method: 'POST', path: 'jobs/j1/stop', body: { x: 1 } }
    ]);
    model.deliver({ jobctl: 'response', id: 2, status: 409, body: { error: 'Job j1 is completed.', status: 'completed' } });
    model.deliver({ jobctl: 'response', id: 1, status: 200, body: { id: 'j1' } });
    expect(await p1).toEqual({ id: 'j1' });
    const err = await rejected(p2);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.message).toBe('Job j1 is completed.');
    expect(err.status).toBe(409);
    expect(err.state).toBe('completed');
  });

  it('times out unanswered requests with the timeout sentence', async () => {
    vi.useFakeTimers();
    const t = new CommTransport(new FakeModel());
    const p = rejected(t.request('GET', 'jobs/j1'));
    await vi.advanceTimersByTimeAsync(10_001);
    expect((await p).message).toBe('The server did not answer in time');
  });

  it('subscribe, messages, closed, unsubscribe', () => {
    const model = new FakeModel();
    const t = new CommTransport(model);
    const events: string[] = [];
    const sock = t.openStream('jobs/j1/stream', { after: 4 }, {
      open: () => events.push('open'),
      message: f => events.push(`msg:${JSON.stringify(f)}`),
      close: code => events.push(`close:${code}`)
    });
    const list = t.openStream('stream', {}, { open() {}, message() {}, close: () => events.push('list closed') });
    expect(model.sent).toEqual([
      { jobctl: 'subscribe', sub: 1, path: 'jobs/j1/stream', after: 4 },
      { jobctl: 'subscribe', sub: 2, path: 'stream' }
    ]);
    model.deliver({ jobctl: 'message', sub: 1, message: { type: 'snapshot' } });
    model.deliver({ jobctl: 'message', sub: 3, message: { type: 'nope' } });
    model.deliver({ jobctl: 'closed', sub: 1 });
    expect(events).toEqual(['open', 'msg:{"type":"snapshot"}', 'close:1006']);
    sock.close(); // already closed by the relay: nothing more to say
    list.close();
    expect(model.sent[model.sent.length - 1]).toEqual({ jobctl: 'unsubscribe', sub: 2 });
    expect(model.sent.filter(m => m.jobctl === 'unsubscribe')).toHaveLength(1);
    t.dispose();
    expect(model.listening).toBe(0);
  });
});

describe('parseTarget (hostile output data)', () => {
  it('accepts plain ids and the jobs view, refuses anything else', () => {
    expect(parseTarget({ job_id: 'a1b2c3d4e5f60718293a4b5c6d7e8f90' })).toEqual({ kind: 'job', jobId: 'a1b2c3d4e5f60718293a4b5c6d7e8f90' });
    expect(parseTarget({ view: 'jobs' })).toEqual({ kind: 'jobs' });
    for (const bad of [{ job_id: '../../api/kernels' }, { job_id: 'a b' }, { job_id: 42 }, { job_id: '<img src=x>' }, {}, null, 'x', { job_id: 'x'.repeat(200) }]) {
      expect(parseTarget(bad).kind).toBe('error');
    }
  });
});
