/**
 * The job view's state, folded from a snapshot and the events after it. No DOM.
 *
 * A snapshot carries the job's latest fields as of its `last_seq`; the replay that follows
 * it starts further back (from the seq we asked for), so events at or below the snapshot's
 * seq only feed the histories (log tail, metric curves, test results), while later events
 * also move the latest fields (state, progress, counts) — the view never steps backwards.
 */

import { Counts, Job, JobEvent, TestResult, isRecord, isTerminal } from '../api/types';

export const MAX_LOG_LINES = 500;
export const MAX_METRIC_POINTS = 4000;

export interface LogLine {
  /** Running number of the line since the last clear (the tail renders by it). */
  n: number;
  line: string;
  stream: string;
}

export interface ResultEntry extends TestResult {
  seq: number;
}

/** Numeric keys of a metric event that are its position, not a curve. */
const X_KEYS = ['step', 'epoch'];

function num(x: unknown): number | null {
  return typeof x === 'number' && Number.isFinite(x) ? x : null;
}

export function emptyCounts(): Counts {
  return { total: 0, completed: 0, passed: 0, failed: 0, skipped: 0 };
}

/** pytest outcomes → the job's three count buckets (as the pytest plugin counts them). */
export function countBucket(outcome: string): 'passed' | 'failed' | 'skipped' | null {
  switch (outcome) {
    case 'passed':
    case 'xpassed':
      return 'passed';
    case 'failed':
    case 'error':
      return 'failed';
    case 'skipped':
    case 'xfailed':
      return 'skipped';
    default:
      return null;
  }
}

export class JobModel {
  job: Job | null = null;
  /** Events up to this seq are already reflected in `job`'s latest fields. */
  snapshotSeq = 0;
  /** Bumped whenever the histories are cleared (a reset, another job). */
  epoch = 0;

  readonly logs: LogLine[] = [];
  /** Lines appended since the last clear (older ones fell out of the tail). */
  logCount = 0;

  readonly metricNames: string[] = [];
  metricX: number[] = [];
  metricY = new Map<string, (number | null)[]>();
  private nextIndex = 0;

  readonly results = new Map<string, ResultEntry>();
  resultsVersion = 0;

  /** Forget every event (a reset: the server's replay will rebuild them). */
  clear(): void {
    this.snapshotSeq = 0;
    this.epoch += 1;
    this.logs.length = 0;
    this.logCount = 0;
    this.metricNames.length = 0;
    this.metricX = [];
    this.metricY = new Map();
    this.nextIndex = 0;
    this.results.clear();
    this.resultsVersion += 1;
  }

  applySnapshot(job: Job): void {
    this.job = normalise(job);
    this.snapshotSeq = Math.max(this.snapshotSeq, this.job.last_seq);
  }

  /** A fresher copy of the job (an action's answer, a re-read): never older than what we have. */
  applyJob(job: Job): void {
    if (!this.job || job.last_seq >= this.job.last_seq) {
      this.job = normalise(job);
      this.snapshotSeq = Math.max(this.snapshotSeq, this.job.last_seq);
    }
  }

  applyEvent(ev: JobEvent): void {
    const live = ev.seq > this.snapshotSeq;
    switch (ev.event) {
      case 'log':
        this.addLog(ev.data);
        break;
      case 'metric':
        this.addMetric(ev.data);
        break;
      case 'result':
        this.addResult(ev);
        break;
      default:
        break;
    }
    if (live && this.job) {
      this.advance(this.job, ev);
      this.job.last_seq = ev.seq;
    }
  }

  private advance(job: Job, ev: JobEvent): void {
    const d = ev.data;
    switch (ev.event) {
      case 'status': {
        if (typeof d.status !== 'string') {
          return;
        }
        job.status = d.status;
        if (!job.started_at && (d.status === 'initializing' || d.status === 'running')) {
          job.started_at = ev.ts || null;
        }
        if (isTerminal(d.status) && !job.finished_at) {
          job.finished_at = ev.ts || null;
        }
        return;
      }
      case 'progress':
        job.progress = {
          done: num(d.done),
          total: num(d.total),
          unit: typeof d.unit === 'string' ? d.unit : null,
          rate: num(d.rate),
          eta_s: num(d.eta_s)
        };
        return;
      case 'metric': {
        const metrics = { ...job.metrics };
        for (const [k, v] of Object.entries(d)) {
          if (k !== 'step') {
            metrics[k] = v;
          }
        }
        job.metrics = metrics;
        return;
      }
      case 'collection': {
        const total = num(d.total);
        if (total !== null) {
          job.counts = { ...job.counts, total };
        }
        return;
      }
      case 'result': {
        const bucket = countBucket(typeof d.outcome === 'string' ? d.outcome : '');
        const c = { ...job.counts };
        c.completed += 1;
        if (bucket) {
          c[bucket] += 1;
        }
        c.total = Math.max(c.total, c.completed);
        job.counts = c;
        return;
      }
      case 'summary': {
        if (isRecord(d.counts)) {
          const by = d.counts;
          const n = (k: string) => num(by[k]) ?? 0;
          const completed = Object.values(by).reduce<number>((a, v) => a + (num(v) ?? 0), 0);
          job.counts = {
            total: Math.max(job.counts.total, completed),
            completed,
            passed: n('passed') + n('xpassed'),
            failed: n('failed') + n('error'),
            skipped: n('skipped') + n('xfailed')
          };
        }
        const code = num(d.exit_code);
        if (code !== null) {
          job.exit_code = code;
        }
        return;
      }
      default:
        return;
    }
  }

  private addLog(d: Record<string, unknown>): void {
    const line = typeof d.line === 'string' ? d.line : String(d.line ?? '');
    const stream = typeof d.stream === 'string' ? d.stream : 'stdout';
    this.logCount += 1;
    this.logs.push({ n: this.logCount, line, stream });
    if (this.logs.length > MAX_LOG_LINES) {
      this.logs.splice(0, this.logs.length - MAX_LOG_LINES);
    }
  }

  private addMetric(d: Record<string, unknown>): void {
    const values: [string, number][] = [];
    for (const [k, v] of Object.entries(d)) {
      const x = num(v);
      if (x !== null && !X_KEYS.includes(k)) {
        values.push([k, x]);
      }
    }
    if (!values.length) {
      return;
    }
    const last = this.metricX.length ? this.metricX[this.metricX.length - 1] : null;
    let x = num(d.step) ?? num(d.epoch) ?? this.nextIndex;
    let merge = last !== null && x === last;
    if (last !== null && x < last) {
      x = last + 1; // curves need increasing x; a step that goes back is drawn after
      merge = false;
    }
    this.nextIndex = Math.floor(x) + 1;
    if (!merge) {
      this.metricX.push(x);
      for (const ys of this.metricY.values()) {
        ys.push(null);
      }
    }
    const at = this.metricX.length - 1;
    for (const [name, value] of values) {
      let ys = this.metricY.get(name);
      if (!ys) {
        ys = new Array<number | null>(this.metricX.length).fill(null);
        this.metricY.set(name, ys);
        this.metricNames.push(name);
      }
      ys[at] = value;
    }
    if (this.metricX.length > MAX_METRIC_POINTS) {
      this.decimate();
    }
  }

  /** Keep every other point: the curve's shape survives, memory stays bounded. */
  private decimate(): void {
    const keep = (_: unknown, i: number) => i % 2 === 1 || i === this.metricX.length - 1;
    this.metricX = this.metricX.filter(keep);
    for (const [name, ys] of this.metricY) {
      this.metricY.set(name, ys.filter(keep));
    }
  }

  private addResult(ev: JobEvent): void {
    const d = ev.data;
    if (typeof d.nodeid !== 'string') {
      return;
    }
    this.results.set(d.nodeid, {
      seq: ev.seq,
      nodeid: d.nodeid,
      outcome: typeof d.outcome === 'string' ? d.outcome : 'passed',
      duration: num(d.duration) ?? undefined,
      message: typeof d.message === 'string' ? d.message : undefined
    });
    this.resultsVersion += 1;
  }
}

/** Fill what an older or odd server may leave out, so the view can read fields freely. */
function normalise(job: Job): Job {
  const counts = isRecord(job.counts) ? { ...emptyCounts(), ...job.counts } : emptyCounts();
  const p: Partial<Job['progress']> = isRecord(job.progress) ? job.progress : {};
  const progress = {
    done: num(p.done),
    total: num(p.total),
    unit: typeof p.unit === 'string' ? p.unit : null,
    rate: num(p.rate),
    eta_s: num(p.eta_s)
  };
  return {
    ...job,
    name: typeof job.name === 'string' ? job.name : '',
    status: typeof job.status === 'string' ? job.status : 'pending',
    kind: typeof job.kind === 'string' ? job.kind : '',
    last_seq: typeof job.last_seq === 'number' ? job.last_seq : 0,
    counts,
    progress,
    metrics: isRecord(job.metrics) ? { ...job.metrics } : {}
  };
}
