/**
 * One row of the jobs panel, rendered into a recycled element (see virtual.ts):
 *
 *   name ……………………………………………… [state]
 *   ▓▓▓▓▓▓░░░░  3/5 epoch · 1.2 epoch/s · ETA 2s      (tests: 12 passed · 1 failed · 13/40)
 *   training · 10:02:11 · 5f0c…            [Pause] [Stop] [Open]
 *
 * Text only (names, ids and messages become text nodes). The state badge's text is the
 * state's name and carries `data-jobctl-status`; the buttons are exactly the actions the
 * state allows (view/actions.ts), named Stop, Pause, Resume, Start, Delete, Rerun failed,
 * plus Open. While an action is in flight its word (`Stopping…`) replaces the meta line and
 * the row's buttons are disabled; then its outcome is shown there for a while.
 */

import { Job, isTerminal } from '../api/types';
import { ACTIONS, ActionName, allowedActions } from '../view/actions';
import { h, replaceChildren, setText } from '../view/dom';
import { formatClock, formatCount, formatDuration, formatProgress, parseTime } from '../view/format';
import { ActionStatus } from './runner';

export const ROW_HEIGHT = 78;

export interface RowCallbacks {
  action(jobId: string, action: ActionName): void;
  open(jobId: string): void;
}

interface RowParts {
  name: HTMLElement;
  badge: HTMLElement;
  track: HTMLElement;
  fill: HTMLElement;
  summary: HTMLElement;
  meta: HTMLElement;
  message: HTMLElement;
  actions: HTMLElement;
  signature: string;
  jobId: string;
}

const parts = new WeakMap<HTMLElement, RowParts>();

export function createRow(callbacks: RowCallbacks): HTMLElement {
  const name = h('span', { class: 'jobctl-prow-name' });
  const badge = h('span', { class: 'jobctl-badge jobctl-prow-badge', attrs: { 'data-jobctl-status': '' } });
  const fill = h('div', { class: 'jobctl-prow-fill' });
  const track = h('div', { class: 'jobctl-prow-track', attrs: { 'aria-hidden': 'true' } }, fill);
  const summary = h('span', { class: 'jobctl-prow-summary' });
  const meta = h('span', { class: 'jobctl-prow-meta' });
  const message = h('span', { class: 'jobctl-prow-message' });
  message.hidden = true;
  const actions = h('div', { class: 'jobctl-prow-actions', attrs: { role: 'group', 'aria-label': 'Job actions' } });
  const el = h(
    'div',
    { class: 'jobctl-prow' },
    h('div', { class: 'jobctl-prow-line jobctl-prow-head' }, name, badge),
    h('div', { class: 'jobctl-prow-line jobctl-prow-progress' }, track, summary),
    h('div', { class: 'jobctl-prow-line jobctl-prow-foot' }, h('div', { class: 'jobctl-prow-info' }, meta, message), actions)
  );
  const p: RowParts = { name, badge, track, fill, summary, meta, message, actions, signature: '', jobId: '' };
  parts.set(el, p);
  el.addEventListener('click', ev => {
    const target = ev.target as HTMLElement;
    const button = target.closest('button');
    if (button && el.contains(button)) {
      ev.stopPropagation();
      const action = button.dataset.jobctlAction;
      if (action === 'open') {
        callbacks.open(p.jobId);
      } else if (action) {
        callbacks.action(p.jobId, action as ActionName);
      }
      return;
    }
    if (window.getSelection?.()?.toString()) {
      return; // selecting a name or an id to copy it is not a click on the row
    }
    callbacks.open(p.jobId);
  });
  return el;
}

/** Progress text of a row: tests show their counts, everything else `done/total · ETA`. */
export function rowSummary(job: Job): { text: string; fraction: number | null } {
  const active = !isTerminal(job.status);
  if (job.kind === 'test_batch') {
    const c = job.counts;
    const bits = [`${formatCount(c.passed)} passed`, `${formatCount(c.failed)} failed`];
    if (c.skipped) {
      bits.push(`${formatCount(c.skipped)} skipped`);
    }
    let fraction: number | null = null;
    if (c.total > 0) {
      bits.push(`${formatCount(c.completed)}/${formatCount(c.total)}`);
      fraction = Math.min(1, c.completed / c.total);
    }
    const eta = job.progress?.eta_s;
    if (active && typeof eta === 'number' && Number.isFinite(eta) && eta >= 0 && fraction !== 1) {
      bits.push(`ETA ${formatDuration(eta)}`);
    }
    return { text: bits.join(' · '), fraction };
  }
  const p = formatProgress(job.progress, active);
  if (!p.text && !active && job.reason) {
    return { text: job.reason, fraction: null }; // e.g. `Worker exit code 3.`
  }
  if (!p.text) {
    if (job.status === 'pending') {
      return { text: 'Not started', fraction: null };
    }
    if (job.status === 'initializing') {
      // a job waiting for a place to run says why (`Waiting for a worker with GPU=1.`)
      return { text: job.reason || 'Starting…', fraction: null };
    }
  }
  return p;
}

export function rowMeta(job: Job, now: number): string {
  const bits: string[] = [];
  const started = parseTime(job.started_at);
  const created = parseTime(job.created_at);
  const finished = parseTime(job.finished_at);
  if (finished !== null && started !== null) {
    bits.push(`took ${formatDuration(Math.max(0, (finished - started) / 1000))}`);
  } else if (started !== null && !isTerminal(job.status)) {
    bits.push(`for ${formatDuration(Math.max(0, (now - started) / 1000))}`);
  } else if (created !== null) {
    bits.push(formatClock(created, now));
  }
  bits.push(job.kind.replace('_', ' '), job.id);
  return bits.join(' · ');
}

/** Fill a row for a job; `status` is its action's status, if any. */
export function renderRow(el: HTMLElement, job: Job, status: ActionStatus | null, now: number): void {
  const p = parts.get(el);
  if (!p) {
    return;
  }
  p.jobId = job.id;
  el.setAttribute('data-jobctl-job', job.id);
  el.setAttribute('data-jobctl-kind', job.kind);
  const state = job.status;
  el.setAttribute('data-jobctl-state', state);
  const label = job.name || job.id;
  setText(p.name, label);
  p.name.title = label;
  setText(p.badge, state);
  p.badge.setAttribute('data-jobctl-status', state);
  el.setAttribute('aria-label', `${label}, ${state}`);

  const { text, fraction } = rowSummary(job);
  if (p.summary.title !== text) {
    p.summary.title = text;
    if (job.kind === 'test_batch') {
      // the counts in their colours (failures stand out); the text stays the same
      const bits = text.split(' · ').map(bit => {
        const cls = / passed$/.test(bit) ? 'jobctl-prow-passed' : / failed$/.test(bit) && !/^0 /.test(bit) ? 'jobctl-prow-failed' : '';
        return cls ? h('span', { class: cls, text: bit }) : bit;
      });
      const children: (HTMLElement | string)[] = [];
      bits.forEach((b, i) => {
        if (i) {
          children.push(' · ');
        }
        children.push(b);
      });
      replaceChildren(p.summary, ...children);
    } else {
      setText(p.summary, text);
    }
  }
  const indeterminate = fraction === null && (state === 'initializing' || state === 'running');
  p.track.classList.toggle('jobctl-indeterminate', indeterminate);
  p.track.hidden = fraction === null && !indeterminate; // no bar for what has no progress
  p.track.dataset.jobctlStatus = state;
  const width = fraction === null ? (indeterminate ? '' : '0%') : `${(fraction * 100).toFixed(1)}%`;
  if (p.fill.style.width !== width) {
    p.fill.style.width = width;
  }

  const meta = rowMeta(job, now);
  setText(p.meta, meta);
  p.meta.title = meta;
  if (status) {
    setText(p.message, status.message);
    p.message.title = status.message;
    p.message.dataset.phase = status.phase;
    p.message.setAttribute('role', status.phase === 'busy' || status.phase === 'ok' ? 'status' : 'alert');
    p.message.hidden = false;
    p.meta.hidden = true;
  } else if (!p.message.hidden) {
    p.message.hidden = true;
    setText(p.message, '');
    p.meta.hidden = false;
  }

  renderActions(el, p, job, status);
}

function renderActions(el: HTMLElement, p: RowParts, job: Job, status: ActionStatus | null): void {
  const busy = status?.phase === 'busy';
  const gone = status?.phase === 'gone';
  const names: (ActionName | 'open')[] = gone ? [] : allowedActions(job);
  // an action in flight keeps its (disabled) button even if the state moved on meanwhile
  if (busy && status && !names.includes(status.action)) {
    names.push(status.action);
  }
  names.push('open');
  const signature = `${job.id}|${names.join(',')}`;
  if (signature !== p.signature) {
    const hadFocus = p.actions.contains(document.activeElement);
    const focused = hadFocus ? (document.activeElement as HTMLElement).dataset.jobctlAction : undefined;
    p.signature = signature;
    replaceChildren(p.actions, ...names.map(n => button(n, job.name || job.id)));
    if (hadFocus) {
      // the button that had focus may be gone (Stop once stopping): keep focus in the row
      const same = focused ? p.actions.querySelector<HTMLElement>(`[data-jobctl-action="${focused}"]`) : null;
      (same ?? el).focus();
    }
  }
  for (const b of Array.from(p.actions.querySelectorAll<HTMLButtonElement>('button'))) {
    const isOpen = b.dataset.jobctlAction === 'open';
    b.disabled = busy && !isOpen;
    b.setAttribute('aria-busy', String(busy && b.dataset.jobctlAction === status?.action));
  }
}

function button(name: ActionName | 'open', jobLabel: string): HTMLButtonElement {
  if (name === 'open') {
    return h('button', {
      class: 'jobctl-button jobctl-prow-button jobctl-action-open',
      text: 'Open',
      title: `Open ${jobLabel}`,
      attrs: { type: 'button', 'data-jobctl-action': 'open' }
    });
  }
  const spec = ACTIONS[name];
  return h('button', {
    class: `jobctl-button jobctl-prow-button jobctl-action-${name.replace('_', '-')}${spec.danger ? ' jobctl-danger' : ''}`,
    text: spec.label,
    title: `${spec.label}: ${jobLabel}`,
    attrs: { type: 'button', 'data-jobctl-action': name }
  });
}

/** Row-level empty state / loading placeholder. */
export function messageRow(text: string): HTMLElement {
  return h('div', { class: 'jobctl-panel-empty', text });
}
