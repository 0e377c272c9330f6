/**
 * Notifications when a job ends — completed, failed, cancelled or lost — with an action that
 * opens it. Only for endings seen happen (a job we knew as active), never for the history a
 * page load brings. Which endings notify, if any, is a setting (schema/panel.json).
 *
 * The sink is injected: the plugin passes JupyterLab's `Notification` (apputils), tests a
 * recorder. Messages are plain strings; JupyterLab renders them as text.
 */

import { isTerminal } from '../api/types';
import { Transition } from './listmodel';

export type NotifyType = 'success' | 'error' | 'warning' | 'info';

export interface NotifyAction {
  label: string;
  callback(): void;
}

export interface NotifySink {
  emit(message: string, type: NotifyType, options: { autoClose: number | false; actions: NotifyAction[] }): void;
}

export const ENDINGS = ['completed', 'failed', 'cancelled', 'lost'] as const;

export interface NotifySettings {
  enabled: boolean;
  states: readonly string[];
}

export const DEFAULT_NOTIFY: NotifySettings = { enabled: true, states: [...ENDINGS] };

/** Read the panel's settings object (from the registry's `composite`), tolerating junk. */
export function readNotifySettings(composite: unknown): NotifySettings {
  const c = typeof composite === 'object' && composite !== null ? (composite as Record<string, unknown>) : {};
  const enabled = typeof c.notifications === 'boolean' ? c.notifications : DEFAULT_NOTIFY.enabled;
  const states = Array.isArray(c.notifyStates)
    ? c.notifyStates.filter((s): s is string => typeof s === 'string' && (ENDINGS as readonly string[]).includes(s))
    : [...DEFAULT_NOTIFY.states];
  return { enabled, states };
}

export function endingMessage(name: string, status: string, reason?: string): { text: string; type: NotifyType } {
  const who = `Job "${name}"`;
  const why = reason ? `: ${reason}` : '';
  switch (status) {
    case 'completed':
      return { text: `${who} completed`, type: 'success' };
    case 'failed':
      return { text: `${who} failed${why}`, type: 'error' };
    case 'cancelled':
      return { text: `${who} was cancelled`, type: 'info' };
    case 'lost':
      return { text: `${who} was lost${why}`, type: 'warning' };
    default:
      return { text: `${who} is ${status}`, type: 'info' };
  }
}

export class EndNotifier {
  settings: NotifySettings = DEFAULT_NOTIFY;
  /** Jobs already notified (a refresh may show the same ending again). */
  private readonly told = new Set<string>();

  constructor(
    private readonly sink: NotifySink,
    private readonly open: (jobId: string) => void
  ) {}

  /** Feed every transition of the list model here. */
  onTransition(t: Transition): boolean {
    const to = t.job.status;
    if (t.from === null || isTerminal(t.from) || !isTerminal(to)) {
      return false;
    }
    if (!this.settings.enabled || !this.settings.states.includes(to) || this.told.has(t.job.id)) {
      return false;
    }
    this.told.add(t.job.id);
    if (this.told.size > 5000) {
      this.told.delete(this.told.values().next().value as string);
    }
    const { text, type } = endingMessage(t.job.name || t.job.id, to, t.job.reason);
    const id = t.job.id;
    this.sink.emit(text, type, {
      autoClose: type === 'error' || type === 'warning' ? false : 6000,
      actions: [{ label: 'Open', callback: () => this.open(id) }]
    });
    return true;
  }
}
