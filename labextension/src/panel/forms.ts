/**
 * The "New training job" and "New test batch" forms of the panel.
 *
 * The server validates (it is the one that knows the rules): a 400 names the offending
 * field (`spec.config.epochs`), and its sentence is shown right under that field, which is
 * marked `aria-invalid` and described by the message; no job was created. The form only
 * checks what it must to build the request at all (a number box holding no number, an
 * unclosed quote in the arguments).
 */

import { Transport, errorMessage, isApiError } from '../api/transport';
import { Job } from '../api/types';
import { h, setText } from '../view/dom';

export const DEMO_TARGET = 'jupyter_jobctl.examples.train:main';
export const MODES = ['smoke_test', 'full'] as const;
export const OPTIMIZERS = ['adam', 'sgd', 'rmsprop'] as const;

export const TRAINING_DEFAULTS = {
  name: '',
  target: DEMO_TARGET,
  mode: 'smoke_test',
  epochs: '5',
  batch_size: '2',
  learning_rate: '0.001',
  optimizer: 'adam'
};

export type FormKind = 'training' | 'test_batch';

/**
 * Split a command line the way a POSIX shell would for plain words: whitespace separates,
 * '…' is literal, "…" allows \" and \\, a backslash outside quotes escapes the next char.
 * Throws on an unclosed quote.
 */
export function shellSplit(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let i = 0;
  while (i < line.length) {
    const c = line[i];
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) {
        throw new Error('Arguments: a single quote is not closed.');
      }
      cur += line.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i += 1;
      let closed = false;
      while (i < line.length) {
        const d = line[i];
        if (d === '\\' && i + 1 < line.length && '"\\$`'.includes(line[i + 1])) {
          cur += line[i + 1];
          i += 2;
        } else if (d === '"') {
          closed = true;
          i += 1;
          break;
        } else {
          cur += d;
          i += 1;
        }
      }
      if (!closed) {
        throw new Error('Arguments: a double quote is not closed.');
      }
      inWord = true;
    } else if (c === '\\') {
      if (i + 1 < line.length) {
        cur += line[i + 1];
        inWord = true;
      }
      i += 2;
    } else if (/\s/.test(c)) {
      if (inWord) {
        out.push(cur);
        cur = '';
        inWord = false;
      }
      i += 1;
    } else {
      cur += c;
      inWord = true;
      i += 1;
    }
  }
  if (inWord) {
    out.push(cur);
  }
  return out;
}

/** A number box's value for the request: a number when it holds one, else the text itself. */
export function numberValue(raw: string): number | string | undefined {
  const t = raw.trim();
  if (t === '') {
    return undefined;
  }
  const n = Number(t);
  return Number.isFinite(n) ? n : t;
}

export interface TrainingValues {
  name: string;
  target: string;
  mode: string;
  epochs: string;
  batch_size: string;
  learning_rate: string;
  optimizer: string;
  start: boolean;
}

export interface TestValues {
  name: string;
  args: string;
  cwd: string;
  start: boolean;
}

/** POST /jobs body of the training form. */
export function trainingBody(v: TrainingValues): Record<string, unknown> {
  const config: Record<string, unknown> = { mode: v.mode, optimizer: v.optimizer };
  for (const key of ['epochs', 'batch_size', 'learning_rate'] as const) {
    const value = numberValue(v[key]);
    if (value !== undefined) {
      config[key] = value;
    }
  }
  const body: Record<string, unknown> = {
    kind: 'training',
    spec: { target: v.target.trim(), config },
    start: v.start
  };
  if (v.name.trim()) {
    body.name = v.name.trim();
  }
  return body;
}

/** POST /jobs body of the test-batch form (throws on an unclosed quote). */
export function testBody(v: TestValues): Record<string, unknown> {
  const spec: Record<string, unknown> = { args: shellSplit(v.args) };
  if (v.cwd.trim()) {
    spec.cwd = v.cwd.trim();
  }
  const body: Record<string, unknown> = { kind: 'test_batch', spec, start: v.start };
  if (v.name.trim()) {
    body.name = v.name.trim();
  }
  return body;
}

/** Which form field a server `field` belongs to (null: the form as a whole). */
export function fieldKey(kind: FormKind, field: string | undefined): string | null {
  if (!field) {
    return null;
  }
  if (field === 'name') {
    return 'name';
  }
  if (kind === 'training') {
    if (field === 'spec.target') {
      return 'target';
    }
    const m = /^spec\.config\.([a-z_]+)/.exec(field);
    if (m && ['mode', 'epochs', 'batch_size', 'learning_rate', 'optimizer'].includes(m[1])) {
      return m[1];
    }
    return null;
  }
  if (field === 'spec.args' || field.startsWith('spec.args[')) {
    return 'args';
  }
  if (field === 'spec.cwd') {
    return 'cwd';
  }
  return null;
}

interface Field {
  key: string;
  label: string;
  control: HTMLInputElement | HTMLSelectElement;
  error: HTMLElement;
}

let formCounter = 0;

export interface JobFormOptions {
  kind: FormKind;
  transport: Transport;
  onCreated(job: Job, started: boolean): void;
  onCancel(): void;
}

export class JobForm {
  readonly node: HTMLFormElement;
  readonly kind: FormKind;
  private readonly fields = new Map<string, Field>();
  private readonly formError: HTMLElement;
  private readonly start: HTMLInputElement;
  private readonly create: HTMLButtonElement;
  private readonly prefix: string;
  private submitting = false;

  constructor(private readonly options: JobFormOptions) {
    this.kind = options.kind;
    this.prefix = `jobctl-form-${++formCounter}`;
    const title = this.kind === 'training' ? 'New training job' : 'New test batch';
    const titleId = `${this.prefix}-title`;
    this.node = h('form', {
      class: 'jobctl-form',
      attrs: { 'aria-labelledby': titleId, novalidate: '', 'data-jobctl-form': this.kind }
    });
    const heading = h('div', { class: 'jobctl-form-title', text: title, attrs: { id: titleId } });
    this.node.appendChild(heading);

    if (this.kind === 'training') {
      this.text('name', 'Name', '', 'optional, e.g. resnet-smoke');
      this.text('target', 'Target', TRAINING_DEFAULTS.target, 'pkg.module:function or path/to/train.py');
      const row1 = h('div', { class: 'jobctl-form-row' });
      this.select('mode', 'Mode', MODES, TRAINING_DEFAULTS.mode, row1);
      this.select('optimizer', 'Optimizer', OPTIMIZERS, TRAINING_DEFAULTS.optimizer, row1);
      this.node.appendChild(row1);
      const row2 = h('div', { class: 'jobctl-form-row jobctl-form-row-3' });
      this.number('epochs', 'Epochs', TRAINING_DEFAULTS.epochs, '1', '1', row2);
      this.number('batch_size', 'Batch size', TRAINING_DEFAULTS.batch_size, '1', '1', row2);
      this.number('learning_rate', 'Learning rate', TRAINING_DEFAULTS.learning_rate, 'any', '0', row2);
      this.node.appendChild(row2);
    } else {
      this.text('name', 'Name', '', 'optional, e.g. unit tests');
      this.text('args', 'Arguments', '', 'tests/ -k smoke -x');
      this.text('cwd', 'Working directory', '', "the server's directory");
    }

    this.start = h('input', { attrs: { type: 'checkbox', id: `${this.prefix}-start` } });
    this.start.checked = true;
    const startLabel = h(
      'label',
      { class: 'jobctl-form-check', attrs: { for: `${this.prefix}-start` } },
      this.start,
      h('span', { text: 'Start now' })
    );
    this.formError = h('div', { class: 'jobctl-form-error', attrs: { role: 'alert', id: `${this.prefix}-error` } });
    this.formError.hidden = true;
    this.create = h('button', {
      class: 'jobctl-button jobctl-action-start jobctl-form-create',
      text: 'Create',
      attrs: { type: 'submit' }
    });
    const cancel = h('button', { class: 'jobctl-button jobctl-form-cancel', text: 'Cancel', attrs: { type: 'button' } });
    cancel.addEventListener('click', () => this.options.onCancel());
    this.node.append(
      startLabel,
      this.formError,
      h('div', { class: 'jobctl-form-buttons' }, cancel, this.create)
    );
    this.node.addEventListener('submit', ev => {
      ev.preventDefault();
      void this.submit();
    });
    this.node.addEventListener('keydown', ev => {
      if (ev.key === 'Escape') {
        ev.preventDefault();
        this.options.onCancel();
      }
    });
    for (const f of this.fields.values()) {
      f.control.addEventListener('input', () => this.clearError(f.key));
      f.control.addEventListener('change', () => this.clearError(f.key));
    }
  }

  /** Focus the first field. */
  focus(): void {
    const first = this.kind === 'training' ? this.fields.get('name') : this.fields.get('args');
    first?.control.focus();
  }

  control(key: string): HTMLInputElement | HTMLSelectElement | undefined {
    return this.fields.get(key)?.control;
  }

  /** Show an error next to a field (or for the whole form). */
  showError(key: string | null, message: string): void {
    const f = key ? this.fields.get(key) : undefined;
    if (!f) {
      setText(this.formError, message);
      this.formError.hidden = false;
      return;
    }
    setText(f.error, message);
    f.error.hidden = false;
    f.control.setAttribute('aria-invalid', 'true');
    f.control.setAttribute('aria-describedby', f.error.id);
    f.control.focus();
  }

  clearErrors(): void {
    for (const f of this.fields.values()) {
      this.clearError(f.key);
    }
    this.formError.hidden = true;
    setText(this.formError, '');
  }

  async submit(): Promise<void> {
    if (this.submitting) {
      return;
    }
    this.clearErrors();
    let body: Record<string, unknown>;
    try {
      body = this.body();
    } catch (err) {
      this.showError(this.kind === 'training' ? null : 'args', errorMessage(err));
      return;
    }
    const bad = this.badNumber();
    if (bad) {
      this.showError(bad.key, `${bad.label} must be a number.`);
      return;
    }
    this.submitting = true;
    this.create.disabled = true;
    setText(this.create, 'Creating…');
    try {
      const job = await this.options.transport.request<Job>('POST', 'jobs', body);
      this.options.onCreated(job, body.start === true);
    } catch (err) {
      const key = isApiError(err) ? fieldKey(this.kind, err.field) : null;
      this.showError(key, errorMessage(err));
    } finally {
      this.submitting = false;
      this.create.disabled = false;
      setText(this.create, 'Create');
    }
  }

  private body(): Record<string, unknown> {
    const v = (k: string) => this.fields.get(k)?.control.value ?? '';
    if (this.kind === 'training') {
      return trainingBody({
        name: v('name'),
        target: v('target'),
        mode: v('mode'),
        epochs: v('epochs'),
        batch_size: v('batch_size'),
        learning_rate: v('learning_rate'),
        optimizer: v('optimizer'),
        start: this.start.checked
      });
    }
    return testBody({ name: v('name'), args: v('args'), cwd: v('cwd'), start: this.start.checked });
  }

  /** A number box the browser could not read as a number (its value is then ''). */
  private badNumber(): Field | null {
    for (const f of this.fields.values()) {
      const c = f.control;
      if (c instanceof HTMLInputElement && c.type === 'number' && c.validity?.badInput) {
        return f;
      }
    }
    return null;
  }

  private clearError(key: string): void {
    const f = this.fields.get(key);
    if (!f || f.error.hidden) {
      return;
    }
    f.error.hidden = true;
    setText(f.error, '');
    f.control.removeAttribute('aria-invalid');
    f.control.removeAttribute('aria-describedby');
  }

  private wrap(key: string, label: string, control: HTMLInputElement | HTMLSelectElement, parent?: HTMLElement): void {
    const id = `${this.prefix}-${key}`;
    control.id = id;
    control.name = key;
    control.classList.add('jobctl-form-control');
    const error = h('div', { class: 'jobctl-field-error', attrs: { id: `${id}-error`, 'data-jobctl-field-error': key } });
    error.hidden = true;
    const field = h(
      'div',
      { class: 'jobctl-field', attrs: { 'data-jobctl-field': key } },
      h('label', { class: 'jobctl-field-label', text: label, attrs: { for: id } }),
      control,
      error
    );
    (parent ?? this.node).appendChild(field);
    this.fields.set(key, { key, label, control, error });
  }

  private text(key: string, label: string, value: string, placeholder: string): void {
    const input = h('input', { attrs: { type: 'text', placeholder, autocomplete: 'off', spellcheck: 'false' } });
    input.value = value;
    this.wrap(key, label, input);
  }

  private number(key: string, label: string, value: string, step: string, min: string, parent: HTMLElement): void {
    const input = h('input', { attrs: { type: 'number', step, min, inputmode: step === 'any' ? 'decimal' : 'numeric' } });
    input.value = value;
    this.wrap(key, label, input, parent);
  }

  private select(key: string, label: string, options: readonly string[], value: string, parent: HTMLElement): void {
    const select = h('select');
    for (const o of options) {
      const opt = h('option', { text: o });
      opt.value = o;
      select.appendChild(opt);
    }
    select.value = value;
    this.wrap(key, label, select, parent);
  }
}
