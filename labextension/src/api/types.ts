/**
 * The server's objects (docs/architecture.md, jupyter_jobctl/server/openapi.json), as the front end sees them.
 *
 * Everything that arrives from the network is untrusted: these types say what a well-behaved
 * server sends, and the view still renders every string as text only.
 */

export const JOB_STATES = [
  'pending',
  'initializing',
  'running',
  'paused',
  'stopping',
  'completed',
  'failed',
  'cancelled',
  'lost'
] as const;

export type JobState = (typeof JOB_STATES)[number];

export const TERMINAL_STATES: ReadonlySet<string> = new Set<JobState>([
  'completed',
  'failed',
  'cancelled',
  'lost'
]);

export const JOB_KINDS = ['training', 'test_batch', 'command', 'notebook'] as const;
export type JobKind = (typeof JOB_KINDS)[number];

export interface Progress {
  done: number | null;
  total: number | null;
  unit: string | null;
  rate: number | null;
  eta_s: number | null;
}

export interface Counts {
  total: number;
  completed: number;
  passed: number;
  failed: number;
  skipped: number;
}

export interface Job {
  id: string;
  kind: JobKind | string;
  name: string;
  status: JobState | string;
  spec: Record<string, unknown>;
  attempt: number;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  last_seq: number;
  progress: Progress;
  counts: Counts;
  metrics: Record<string, unknown>;
  exit_code?: number;
  signal?: string;
  reason?: string;
  /** Notebook jobs: the executed copy, an absolute path on the server. */
  output_path?: string;
}

export interface JobList {
  jobs: Job[];
  next: string | null;
}

export const EVENT_TYPES = [
  'status',
  'progress',
  'metric',
  'log',
  'result',
  'collection',
  'summary'
] as const;

/** One stored event, as the job stream delivers it (`event` is its type). */
export interface JobEvent {
  seq: number;
  event: string;
  ts: string;
  data: Record<string, unknown>;
}

export const OUTCOMES = ['failed', 'error', 'passed', 'skipped', 'xfailed', 'xpassed'] as const;
export type Outcome = (typeof OUTCOMES)[number];

export interface TestResult {
  nodeid: string;
  outcome: string;
  duration?: number;
  message?: string;
}

// ---- stream frames (server/stream.py)

export interface SnapshotFrame {
  type: 'snapshot';
  job: Job;
  last_seq?: number;
}
export interface EventFrame {
  type: 'event';
  job: string;
  seq: number;
  event: string;
  ts: string;
  data: Record<string, unknown>;
}
export interface ResetFrame {
  type: 'reset';
  reason?: string;
}
export interface DoneFrame {
  type: 'done';
  status: string;
  last_seq?: number;
}
export interface HeartbeatFrame {
  type: 'heartbeat';
  last_seq?: number;
}
export type JobFrame = SnapshotFrame | EventFrame | ResetFrame | DoneFrame | HeartbeatFrame;

/** Frames of WS /stream: every job's summary changes. */
export interface ListJobFrame {
  type: 'job';
  job: Job;
}
export interface ListDeletedFrame {
  type: 'deleted';
  id: string;
}
export type ListFrame = ListJobFrame | ListDeletedFrame | HeartbeatFrame;

export function isTerminal(status: string): boolean {
  return TERMINAL_STATES.has(status);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A job id as the server makes them (uuid hex) or any similarly plain token; never a path. */
const PLAIN_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

export function isPlainId(value: unknown): value is string {
  return typeof value === 'string' && PLAIN_ID.test(value);
}
