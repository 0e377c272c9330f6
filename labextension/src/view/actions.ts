/**
 * Which actions a job offers in its current state, and how each one is called and worded.
 *
 * Pure (no DOM, no network) so that the rule "a button is present only when its action is
 * allowed" (docs/architecture.md) is tested for every state and kind, and shared by the job view, the
 * jobs list and the side panel.
 */

import { jobPath } from '../api/transport';
import { Job, isTerminal } from '../api/types';

export type ActionName = 'start' | 'pause' | 'resume' | 'stop' | 'rerun_failed' | 'delete';

export interface ActionSpec {
  name: ActionName;
  /** The button's accessible name (a contract: browser tests find buttons by it). */
  label: string;
  /** Shown while the request is in flight. */
  busy: string;
  /** Shown when the server accepted it. */
  accepted: string;
  method: 'POST' | 'DELETE';
  path(jobId: string): string;
  body?: Record<string, unknown>;
  /** Styled as destructive. */
  danger?: boolean;
  /** Asked before the request, for what cannot be undone (`name` is the job's name or id). */
  question?: (name: string) => Question;
}

/** A yes/no question put to the user before an action. */
export interface Question {
  title: string;
  body: string;
  /** The accepting button's label. */
  accept: string;
}

/** Puts a question to the user; resolves true to go ahead. */
export type Confirm = (question: Question) => Promise<boolean>;

/**
 * The question to put before an action, if it has one. (An action without one runs in the
 * same tick as its click: no promise in the way of Stop.)
 */
export function questionFor(action: ActionName, name: string): Question | null {
  const question = ACTIONS[action].question;
  return question ? question(name) : null;
}

export const ACTIONS: Readonly<Record<ActionName, ActionSpec>> = {
  start: {
    name: 'start',
    label: 'Start',
    busy: 'Starting…',
    accepted: 'Start requested',
    method: 'POST',
    path: id => jobPath(id, 'start')
  },
  pause: {
    name: 'pause',
    label: 'Pause',
    busy: 'Pausing…',
    accepted: 'Pause requested',
    method: 'POST',
    path: id => jobPath(id, 'pause')
  },
  resume: {
    name: 'resume',
    label: 'Resume',
    busy: 'Resuming…',
    accepted: 'Resume requested',
    method: 'POST',
    path: id => jobPath(id, 'resume')
  },
  stop: {
    name: 'stop',
    label: 'Stop',
    busy: 'Stopping…',
    accepted: 'Stop requested',
    method: 'POST',
    path: id => jobPath(id, 'stop'),
    danger: true
  },
  rerun_failed: {
    name: 'rerun_failed',
    label: 'Rerun failed',
    busy: 'Starting a rerun…',
    accepted: 'Rerun started',
    method: 'POST',
    path: id => jobPath(id, 'rerun'),
    body: { only: 'failed' }
  },
  delete: {
    name: 'delete',
    label: 'Delete',
    busy: 'Deleting…',
    accepted: 'Deleted',
    method: 'DELETE',
    path: id => jobPath(id),
    danger: true,
    question: name => ({
      title: 'Delete this job?',
      body: `"${name}" and its logs, metrics and results will be removed for good.`,
      accept: 'Delete'
    })
  }
};

/** Display order of the buttons. */
export const ACTION_ORDER: readonly ActionName[] = [
  'start',
  'pause',
  'resume',
  'stop',
  'rerun_failed',
  'delete'
];

const STOPPABLE: ReadonlySet<string> = new Set(['pending', 'initializing', 'running', 'paused']);

export type ActionSubject = Pick<Job, 'status' | 'kind'> & {
  counts?: Partial<Pick<Job['counts'], 'failed'>> | null;
};

export function isAllowed(action: ActionName, job: ActionSubject): boolean {
  const status = job.status;
  switch (action) {
    case 'start':
      return status === 'pending';
    case 'pause':
      return status === 'running';
    case 'resume':
      return status === 'paused';
    case 'stop':
      return STOPPABLE.has(status);
    case 'delete':
      return isTerminal(status);
    case 'rerun_failed':
      return job.kind === 'test_batch' && isTerminal(status) && (job.counts?.failed ?? 0) > 0;
  }
}

/** The actions allowed now, in display order. */
export function allowedActions(job: ActionSubject): ActionName[] {
  return ACTION_ORDER.filter(name => isAllowed(name, job));
}
