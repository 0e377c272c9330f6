import { afterEach, describe, expect, it } from 'vitest';

import { MIME_TYPE, RENDERER_RANK, createRendererFactory } from '../src/mime';
import widget, { WidgetModel } from '../src/widget';
import { FakeTransport, flush, makeJob } from './helpers';

afterEach(() => document.body.replaceChildren());

const ID = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';

function mimeModel(data: unknown) {
  return { data: { [MIME_TYPE]: data }, metadata: {}, trusted: false, setData() {} } as never;
}

describe('MIME renderer', () => {
  it('is safe, ranked -20, and renders the job view from {job_id}', async () => {
    const transport = new FakeTransport();
    const factory = createRendererFactory(() => transport);
    expect(factory.safe).toBe(true);
    expect(factory.defaultRank).toBe(-20);
    expect(RENDERER_RANK).toBe(-20);
    expect(factory.mimeTypes).toEqual(['application/vnd.jupyter.jobctl+json']);
    const r = factory.createRenderer({ mimeType: MIME_TYPE } as never);
    await r.renderModel(mimeModel({ job_id: ID }));
    const view = r.node.querySelector('.jobctl-job');
    expect(view?.getAttribute('data-jobctl-job')).toBe(ID);
    expect(transport.sockets).toHaveLength(1);
    await r.renderModel(mimeModel({ job_id: ID })); // same data: same live view
    expect(transport.sockets).toHaveLength(1);
    r.dispose();
    expect(transport.sockets[0].closedByClient).toBe(true);
  });

  it('shows an error text for a hostile id and opens nothing', async () => {
    const transport = new FakeTransport();
    const r = createRendererFactory(() => transport).createRenderer({ mimeType: MIME_TYPE } as never);
    await r.renderModel(mimeModel({ job_id: '../../api/contents?<img src=x onerror=alert(1)>' }));
    expect(r.node.textContent).toBe('jobctl: this output names an invalid job id.');
    expect(r.node.querySelector('img')).toBeNull();
    expect(transport.sockets).toHaveLength(0);
    expect(transport.requests).toHaveLength(0);
  });

  it('{"view": "jobs"} renders the jobs list', async () => {
    const transport = new FakeTransport();
    transport.responder = () => ({ jobs: [], next: null });
    const r = createRendererFactory(() => transport).createRenderer({ mimeType: MIME_TYPE } as never);
    await r.renderModel(mimeModel({ view: 'jobs' }));
    expect(r.node.querySelector('.jobctl-jobs')).not.toBeNull();
    expect(transport.last.path).toBe('stream');
    r.dispose();
  });
});

class FakeWidgetModel implements WidgetModel {
  sent: Record<string, unknown>[] = [];
  traits: Record<string, unknown> = { job_id: ID, view: 'job' };
  private handlers = new Map<string, ((...a: unknown[]) => void)[]>();
  get(name: string) {
    return this.traits[name];
  }
  send(content: Record<string, unknown>) {
    this.sent.push(content);
  }
  on(name: string, h: (...a: unknown[]) => void) {
    this.handlers.set(name, [...(this.handlers.get(name) ?? []), h]);
  }
  off(name: string, h?: (...a: unknown[]) => void) {
    this.handlers.set(name, (this.handlers.get(name) ?? []).filter(x => x !== h));
  }
  emit(name: string, ...args: unknown[]) {
    (this.handlers.get(name) ?? []).forEach(h => h(...args));
  }
  count() {
    return [...this.handlers.values()].reduce((a, l) => a + l.length, 0);
  }
}

describe('anywidget entry', () => {
  it('without a Jupyter page it relays through the comm, and cleans up', async () => {
    const model = new FakeWidgetModel();
    const el = document.createElement('div');
    document.body.appendChild(el);
    const cleanup = widget.render({ model, el });
    expect(el.querySelector(`.jobctl-job[data-jobctl-job="${ID}"]`)).not.toBeNull();
    expect(model.sent[0]).toEqual({ jobctl: 'subscribe', sub: 1, path: `jobs/${ID}/stream`, after: 0 });
    model.emit('msg:custom', { jobctl: 'message', sub: 1, message: { type: 'snapshot', job: makeJob({ id: ID, name: 'via comm' }) } });
    await new Promise(r => requestAnimationFrame(() => r(null)));
    await flush();
    expect(el.querySelector('.jobctl-name')?.textContent).toBe('via comm');
    expect(document.getElementById('jupyter-jobctl-widget-styles')).not.toBeNull();
    model.traits.job_id = 'otherjob';
    model.emit('change:job_id');
    expect(el.querySelector('.jobctl-job')?.getAttribute('data-jobctl-job')).toBe('otherjob');
    cleanup();
    expect(model.count()).toBe(0);
    expect(model.sent.filter(m => m.jobctl === 'unsubscribe').map(m => m.sub)).toEqual([1, 2]);
    expect(el.children).toHaveLength(0);
  });
});
