import { describe, expect, it } from 'vitest';

import { JOB_KINDS, JOB_STATES } from '../src/api/types';
import { ACTIONS, ActionName, allowedActions, isAllowed } from '../src/view/actions';

/** docs/architecture.md (Front ends), state by state (kinds other than test_batch never rerun). */
const EXPECTED: Record<string, ActionName[]> = {
  pending: ['start', 'stop'],
  initializing: ['stop'],
  running: ['pause', 'stop'],
  paused: ['resume', 'stop'],
  stopping: [],
  completed: ['delete'],
  failed: ['delete'],
  cancelled: ['delete'],
  lost: ['delete']
};
const TERMINAL = ['completed', 'failed', 'cancelled', 'lost'];

describe('allowedActions', () => {
  for (const kind of JOB_KINDS) {
    for (const status of JOB_STATES) {
      it(`${kind} ${status}`, () => {
        const noFailures = allowedActions({ kind, status, counts: { failed: 0 } });
        expect(noFailures).toEqual(EXPECTED[status]);
        const withFailures = allowedActions({ kind, status, counts: { failed: 2 } });
        if (kind === 'test_batch' && TERMINAL.includes(status)) {
          expect(withFailures).toEqual(['rerun_failed', 'delete']);
        } else {
          expect(withFailures).toEqual(EXPECTED[status]);
        }
      });
    }
  }

  it('Stop is offered exactly for pending, initializing, running and paused', () => {
    const stoppable = JOB_STATES.filter(s => isAllowed('stop', { kind: 'training', status: s }));
    expect(stoppable).toEqual(['pending', 'initializing', 'running', 'paused']);
  });

  it('an unknown state offers nothing, missing counts never offer a rerun', () => {
    expect(allowedActions({ kind: 'training', status: 'exploded' })).toEqual([]);
    expect(allowedActions({ kind: 'test_batch', status: 'completed' })).toEqual(['delete']);
    expect(allowedActions({ kind: 'test_batch', status: 'completed', counts: null })).toEqual(['delete']);
  });

  it('labels are the accessible names of the contract, with their in-flight words', () => {
    const labels = Object.values(ACTIONS).map(a => [a.label, a.busy]);
    expect(labels).toEqual([
      ['Start', 'Starting…'],
      ['Pause', 'Pausing…'],
      ['Resume', 'Resuming…'],
      ['Stop', 'Stopping…'],
      ['Rerun failed', 'Starting a rerun…'],
      ['Delete', 'Deleting…']
    ]);
    expect(ACTIONS.stop.accepted).toBe('Stop requested');
    expect(ACTIONS.stop.path('abc')).toBe('jobs/abc/stop');
    expect(ACTIONS.delete.method).toBe('DELETE');
    expect(ACTIONS.rerun_failed.body).toEqual({ only: 'failed' });
  });
});
