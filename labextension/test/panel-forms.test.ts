import { afterEach, describe, expect, it } from 'vitest';

import { ApiError } from '../src/api/errors';
import { Job } from '../src/api/types';
import { JobForm, fieldKey, numberValue, shellSplit, testBody, trainingBody } from '../src/panel/forms';
import { EndNotifier, NotifyType, readNotifySettings } from '../src/panel/notify';
import { FakeTransport } from './helpers';
import { jobN, settle } from './panel-helpers';

afterEach(() => document.body.replaceChildren());

describe('shellSplit', () => {
  it('splits like a shell', () => {
    expect(shellSplit('tests/ -k "smoke and not slow" -x')).toEqual(['tests/', '-k', 'smoke and not slow', '-x']);
    expect(shellSplit("a 'b c' d\\ e \"q\\\"x\"")).toEqual(['a', 'b c', 'd e', 'q"x']);
    expect(shellSplit('  ')).toEqual([]);
    expect(shellSplit("''")).toEqual(['']);
  });
  it('refuses an unclosed quote', () => {
    expect(() => shellSplit('-k "smoke')).toThrow(/not closed/);
  });
});

describe('request bodies', () => {
  it('builds the training body with numbers, and leaves junk for the server to name', () => {
    const body = trainingBody({
      name: ' seed ',
      target: 'jupyter_jobctl.examples.train:main',
      mode: 'smoke_test',
      epochs: '5',
      batch_size: '2',
      learning_rate: '0.001',
      optimizer: 'adam',
      start: false
    });
    expect(body).toEqual({
      kind: 'training',
      name: 'seed',
      spec: {
        target: 'jupyter_jobctl.examples.train:main',
        config: { mode: 'smoke_test', optimizer: 'adam', epochs: 5, batch_size: 2, learning_rate: 0.001 }
      },
      start: false
    });
    expect(numberValue('-1')).toBe(-1);
    expect(numberValue('abc')).toBe('abc');
    expect(numberValue(' ')).toBeUndefined();
  });
  it('builds the test-batch body', () => {
    expect(testBody({ name: '', args: 'tests -k smoke', cwd: '/w', start: true })).toEqual({
      kind: 'test_batch',
      spec: { args: ['tests', '-k', 'smoke'], cwd: '/w' },
      start: true
    });
  });
  it('maps server fields to form fields', () => {
    expect(fieldKey('training', 'spec.config.epochs')).toBe('epochs');
    expect(fieldKey('training', 'spec.config.learning_rate')).toBe('learning_rate');
    expect(fieldKey('training', 'spec.target')).toBe('target');
    expect(fieldKey('training', 'spec.config.seed')).toBeNull();
    expect(fieldKey('test_batch', 'spec.args[2]')).toBe('args');
    expect(fieldKey('test_batch', 'spec.cwd')).toBe('cwd');
    expect(fieldKey('test_batch', undefined)).toBeNull();
  });
});

function mountForm(kind: 'training' | 'test_batch', transport: FakeTransport) {
  const created: Job[] = [];
  const form = new JobForm({ kind, transport, onCreated: j => created.push(j), onCancel: () => undefined });
  document.body.appendChild(form.node);
  const byLabel = (text: string) => {
    const label = [...form.node.querySelectorAll('label')].find(l => l.textContent === text)!;
    return form.node.querySelector(`#${label.htmlFor}`) as HTMLInputElement;
  };
  return { form, created, byLabel };
}

describe('JobForm', () => {
  it('has the labelled fields with the defaults', () => {
    const { byLabel } = mountForm('training', new FakeTransport());
    expect(byLabel('Target').value).toBe('jupyter_jobctl.examples.train:main');
    expect(byLabel('Mode').value).toBe('smoke_test');
    expect(byLabel('Epochs').value).toBe('5');
    expect(byLabel('Batch size').value).toBe('2');
    expect(byLabel('Learning rate').value).toBe('0.001');
    expect(byLabel('Optimizer').value).toBe('adam');
    expect(byLabel('Name').value).toBe('');
    expect(byLabel('Start now').checked).toBe(true);
    expect([...document.querySelectorAll('button')].map(b => b.textContent)).toContain('Create');
  });

  it("puts the server's sentence next to the field it names", async () => {
    const t = new FakeTransport();
    t.responder = () =>
      ApiError.fromBody(400, { error: 'spec.config.epochs must be a positive integer.', field: 'spec.config.epochs' }, '');
    const { form, byLabel, created } = mountForm('training', t);
    byLabel('Epochs').value = '0';
    await form.submit();
    await settle();
    const epochs = byLabel('Epochs');
    expect(epochs.getAttribute('aria-invalid')).toBe('true');
    const err = document.getElementById(epochs.getAttribute('aria-describedby')!)!;
    expect(err.textContent).toBe('spec.config.epochs must be a positive integer.');
    expect(err.parentElement!.contains(epochs)).toBe(true); // next to it, in its field
    expect(created).toHaveLength(0);
    expect((t.requests[0].body as { spec: { config: { epochs: number } } }).spec.config.epochs).toBe(0);
    // typing in the field clears it
    epochs.dispatchEvent(new Event('input'));
    expect(epochs.hasAttribute('aria-invalid')).toBe(false);
  });

  it('shows an error without a field on the form, and a created job goes to the callback', async () => {
    const t = new FakeTransport();
    t.responder = () => new ApiError(403, 'Forbidden');
    const { form, created } = mountForm('test_batch', t);
    await form.submit();
    expect(form.node.querySelector('.jobctl-form-error')!.textContent).toBe('Forbidden');
    t.responder = () => jobN(5, { status: 'pending' });
    await form.submit();
    expect(created.map(j => j.name)).toEqual(['job 5']);
  });

  it('refuses an unclosed quote in Arguments without asking the server', async () => {
    const t = new FakeTransport();
    const { form, byLabel } = mountForm('test_batch', t);
    byLabel('Arguments').value = '-k "oops';
    await form.submit();
    expect(t.requests).toHaveLength(0);
    expect(byLabel('Arguments').getAttribute('aria-invalid')).toBe('true');
  });
});

describe('EndNotifier', () => {
  function make() {
    const out: { message: string; type: NotifyType; actions: string[] }[] = [];
    const opened: string[] = [];
    const n = new EndNotifier(
      { emit: (message, type, o) => out.push({ message, type, actions: o.actions.map(a => a.label) }) },
      id => opened.push(id)
    );
    return { n, out, opened };
  }

  it('notifies endings it saw happen, once, with an Open action', () => {
    const { n, out } = make();
    const job = jobN(1, { name: '<img src=x onerror=alert(1)>', status: 'failed', reason: 'exit code 1' });
    expect(n.onTransition({ job, from: null, live: false })).toBe(false); // history, not news
    expect(n.onTransition({ job, from: 'running', live: true })).toBe(true);
    expect(n.onTransition({ job, from: 'running', live: true })).toBe(false); // once
    expect(out).toEqual([{ message: 'Job "<img src=x onerror=alert(1)>" failed: exit code 1', type: 'error', actions: ['Open'] }]);
    expect(n.onTransition({ job: jobN(2, { status: 'running' }), from: 'pending', live: true })).toBe(false);
  });

  it('follows the settings', () => {
    const { n, out } = make();
    n.settings = readNotifySettings({ notifications: true, notifyStates: ['failed', 'bogus'] });
    expect(n.settings.states).toEqual(['failed']);
    n.onTransition({ job: jobN(1, { status: 'completed' }), from: 'running', live: true });
    n.settings = readNotifySettings({ notifications: false });
    n.onTransition({ job: jobN(2, { status: 'failed' }), from: 'running', live: true });
    expect(out).toHaveLength(0);
    n.settings = readNotifySettings(undefined);
    n.onTransition({ job: jobN(3, { status: 'lost' }), from: 'running', live: true });
    expect(out.map(o => o.type)).toEqual(['warning']);
  });
});
