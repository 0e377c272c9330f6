/**
 * The jobs list as the side panel shows it: rows by id, fed by `GET /jobs` pages and the
 * `WS /stream` summaries, filtered by state, kind and a search text. No DOM, no timers:
 * everything is driven through `Transport` and the public methods, so it is unit-tested
 * with a fake transport.
 *
 * Paging is keyset (the server's `next` cursor) for the current server query (state and kind
 * filter). Rows the pages brought are shown down to the *horizon* (the oldest `created_at` of
 * the loaded window); rows known from elsewhere (the stream, the active-jobs fetch, an
 * action's answer) that are older than the horizon are shown only while they are, or were,
 * active — the list never has holes in it, and a job someone is watching never disappears.
 *
 * Freshness: a job's `last_seq` only grows (every change of its summary is an event), so of
 * two copies of a job the one with the larger `last_seq` wins; a terminal job never becomes
 * active again; a job deleted stays deleted even when a page read before the deletion comes
 * back after it. A (re)connect of the stream re-reads the loaded window from the top, which
 * reconciles everything missed while it was down (dedup by id, deletions dropped).
 */

import { Emitter } from '../api/emitter';
import { Transport, errorMessage } from '../api/transport';
import { Job, JobList, isRecord, isTerminal } from '../api/types';

/** First page small (fast first paint), the following ones larger. */
export const FIRST_PAGE = 100;
export const NEXT_PAGE = 500;
/** The server's largest page. */
export const MAX_PAGE = 1000;

export const ACTIVE_STATES = ['pending', 'initializing', 'running', 'paused', 'stopping'] as const;

/** State filter values: '' (all), 'active' (not finished) or one state's name. */
export const STATE_ALL = '';
export const STATE_ACTIVE = 'active';
/** Kind filter values: '' (all) or one kind. */
export const KIND_ALL = '';

export interface ListFilter {
  state: string;
  kind: string;
  search: string;
}

export interface ListModelOptions {
  firstPage?: number;
  nextPage?: number;
}

/** The server's query string for a filter (the search is ours, not the server's). */
export function queryString(filter: Pick<ListFilter, 'state' | 'kind'>, limit: number, cursor: string | null): string {
  const q = new URLSearchParams();
  if (filter.state === STATE_ACTIVE) {
    q.set('status', ACTIVE_STATES.join(','));
  } else if (filter.state) {
    q.set('status', filter.state);
  }
  if (filter.kind) {
    q.set('kind', filter.kind);
  }
  q.set('limit', String(limit));
  if (cursor) {
    q.set('cursor', cursor);
  }
  return `jobs?${q.toString()}`;
}

export function matchesState(job: Pick<Job, 'status'>, state: string): boolean {
  if (state === STATE_ALL) {
    return true;
  }
  if (state === STATE_ACTIVE) {
    return !isTerminal(job.status);
  }
  return job.status === state;
}

export function matchesKind(job: Pick<Job, 'kind'>, kind: string): boolean {
  return kind === KIND_ALL || job.kind === kind;
}

/**
 * The search box: the text (case-insensitive, as typed, spaces included) within the job's
 * name, or the start of its id, or its kind. Ids are hex: matching digits anywhere in them
 * would make `run 12` match half the list.
 */
export function matchesSearch(job: Pick<Job, 'name' | 'id' | 'kind'>, search: string): boolean {
  return searchMatcher(search)(job);
}

export function searchMatcher(search: string): (job: Pick<Job, 'name' | 'id' | 'kind'>) => boolean {
  const q = search.trim().toLowerCase();
  if (!q) {
    return () => true;
  }
  return job => job.name.toLowerCase().includes(q) || job.id.toLowerCase().startsWith(q) || job.kind === q;
}

/** Newest first, as the server pages: created_at descending, then id descending. */
export function compareJobs(a: Pick<Job, 'created_at' | 'id'>, b: Pick<Job, 'created_at' | 'id'>): number {
  if (a.created_at !== b.created_at) {
    return a.created_at < b.created_at ? 1 : -1;
  }
  if (a.id !== b.id) {
    return a.id < b.id ? 1 : -1;
  }
  return 0;
}

/** A job from the network, or null if it is not one (the list must not break on garbage). */
export function asJob(value: unknown): Job | null {
  if (!isRecord(value) || typeof value.id !== 'string' || !value.id) {
    return null;
  }
  const v = value as Record<string, unknown>;
  const counts = isRecord(v.counts) ? v.counts : {};
  const progress = isRecord(v.progress) ? v.progress : {};
  const n = (x: unknown): number => (typeof x === 'number' && Number.isFinite(x) ? x : 0);
  const nn = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);
  return {
    ...(value as unknown as Job),
    name: typeof v.name === 'string' ? v.name : '',
    kind: typeof v.kind === 'string' ? v.kind : '',
    status: typeof v.status === 'string' ? v.status : 'pending',
    created_at: typeof v.created_at === 'string' ? v.created_at : '',
    started_at: typeof v.started_at === 'string' ? v.started_at : null,
    finished_at: typeof v.finished_at === 'string' ? v.finished_at : null,
    last_seq: n(v.last_seq),
    spec: isRecord(v.spec) ? v.spec : {},
    metrics: isRecord(v.metrics) ? v.metrics : {},
    counts: {
      total: n(counts.total),
      completed: n(counts.completed),
      passed: n(counts.passed),
      failed: n(counts.failed),
      skipped: n(counts.skipped)
    },
    progress: {
      done: nn(progress.done),
      total: nn(progress.total),
      unit: typeof progress.unit === 'string' ? progress.unit : null,
      rate: nn(progress.rate),
      eta_s: nn(progress.eta_s)
    }
  };
}

/** Which of two copies of a job to keep. */
export function fresher(current: Job | undefined, incoming: Job): boolean {
  if (!current) {
    return true;
  }
  if (isTerminal(current.status) && !isTerminal(incoming.status)) {
    return false; // a terminal job never changes state again: this copy is older
  }
  if (!isTerminal(current.status) && isTerminal(incoming.status)) {
    return true;
  }
  return incoming.last_seq >= current.last_seq;
}

export interface ListChange {
  /** The visible rows changed (membership or order). */
  rows: boolean;
  /** Ids whose data changed (for cheap re-renders of the visible ones). */
  ids: Set<string>;
}

/** A job changed state (for notifications): `from` is null when it was first seen. */
export interface Transition {
  job: Job;
  from: string | null;
  /** Seen through the live stream (not on a page read or a refresh). */
  live: boolean;
}

export class JobListModel {
  readonly changed = new Emitter<ListChange>();
  readonly transition = new Emitter<Transition>();
  /** A page or refresh failed (the sentence); cleared by the next success. */
  readonly failed = new Emitter<string>();

  private readonly jobs = new Map<string, Job>();
  /** All known jobs, sorted; rebuilt lazily when membership changes. */
  private sorted: Job[] | null = null;
  private visibleCache: Job[] | null = null;
  /** Ids shown whatever the horizon: they were active when we learnt of them. */
  private readonly pinned = new Set<string>();
  private readonly tombstones = new Set<string>();
  private _filter: ListFilter = { state: STATE_ALL, kind: KIND_ALL, search: '' };
  /** created_at of the oldest row of the loaded window; null: nothing loaded yet; '' : all. */
  private horizon: string | null = null;
  private cursor: string | null = null;
  private _complete = false;
  private _loaded = false;
  /** Bumped by every query change: late answers of an older query are ignored. */
  private generation = 0;
  private inflight: Promise<void> | null = null;
  private _error = '';
  /** Last row of the loaded window (where the next page starts). */
  private lastOfWindow: Job | null = null;
  /** Counts live updates; `touched` says when each job last had one. */
  private tick = 0;
  private readonly touched = new Map<string, number>();
  private readonly firstPage: number;
  private readonly nextPage: number;
  private pendingChange: ListChange | null = null;
  private batchDepth = 0;

  constructor(
    private readonly transport: Transport,
    options: ListModelOptions = {}
  ) {
    this.firstPage = options.firstPage ?? FIRST_PAGE;
    this.nextPage = options.nextPage ?? NEXT_PAGE;
  }

  get filter(): Readonly<ListFilter> {
    return this._filter;
  }

  /** Every page of the current query is loaded. */
  get complete(): boolean {
    return this._complete;
  }

  /** The first page of the current query arrived. */
  get loaded(): boolean {
    return this._loaded;
  }

  get loading(): boolean {
    return this.inflight !== null;
  }

  get error(): string {
    return this._error;
  }

  /** Number of jobs known (any filter). */
  get size(): number {
    return this.jobs.size;
  }

  get(id: string): Job | undefined {
    return this.jobs.get(id);
  }

  /** All known jobs, newest first (whatever the filter). */
  all(): readonly Job[] {
    if (!this.sorted) {
      this.sorted = [...this.jobs.values()].sort(compareJobs);
    }
    return this.sorted;
  }

  /** The rows to show, newest first. */
  visible(): readonly Job[] {
    if (!this.visibleCache) {
      const f = this._filter;
      const horizon = this.horizon;
      const search = searchMatcher(f.search);
      this.visibleCache = this.all().filter(
        j =>
          matchesState(j, f.state) &&
          matchesKind(j, f.kind) &&
          search(j) &&
          (horizon === '' || (horizon !== null && j.created_at >= horizon) || this.pinned.has(j.id))
      );
    }
    return this.visibleCache;
  }

  /** Index of a job among the visible rows, or -1. */
  indexOf(id: string): number {
    return this.visible().findIndex(j => j.id === id);
  }

  /** Active jobs known (for "Stop all"). */
  active(): Job[] {
    return this.all().filter(j => !isTerminal(j.status));
  }

  // ------------------------------------------------------------------ filters

  /** Change filters; a change of state or kind starts a new server query. */
  setFilter(change: Partial<ListFilter>): Promise<void> {
    const next = { ...this._filter, ...change };
    const query = next.state !== this._filter.state || next.kind !== this._filter.kind;
    this._filter = next;
    this.invalidate(true);
    if (!query) {
      this.flush();
      return Promise.resolve();
    }
    // the rows we know that match stay on screen (old horizon) until the new first page lands
    this.cursor = null;
    this._complete = false;
    this._loaded = false;
    this.flush();
    return this.refresh();
  }

  // ------------------------------------------------------------------ paging

  /**
   * (Re)read the current query from the top, down to the rows shown now (so nothing on
   * screen disappears): at start, after a filter change and after every (re)connect.
   */
  refresh(): Promise<void> {
    const generation = ++this.generation;
    return this.track(this.readFromTop(generation), generation);
  }

  /** The next page, if there is one and none is under way. */
  loadMore(): Promise<void> {
    if (this._complete || this.inflight || !this._loaded) {
      return this.inflight ?? Promise.resolve();
    }
    const generation = this.generation;
    const cursor = this.cursor;
    const run = (async () => {
      const since = this.tick;
      const page = await this.fetchPage(this.nextPage, cursor);
      if (generation !== this.generation) {
        return;
      }
      const prev = this.lastOfWindow;
      this.batch(() => {
        this.reconcileWindow(page.jobs, prev, page.next, since);
        this.applyPage(page.jobs, page.next, true);
      });
    })();
    return this.track(run, generation);
  }

  private track(run: Promise<void>, generation: number): Promise<void> {
    const p = run.then(
      () => {
        if (generation === this.generation && this._error) {
          this._error = '';
          this.failed.emit('');
        }
      },
      err => {
        if (generation === this.generation) {
          this._error = errorMessage(err);
          this.failed.emit(this._error);
        }
      }
    );
    const tracked: Promise<void> = p.finally(() => {
      if (this.inflight === tracked) {
        this.inflight = null;
        this.invalidate(false);
        this.flush();
      }
    });
    this.inflight = tracked;
    return tracked;
  }

  private async fetchPage(limit: number, cursor: string | null): Promise<{ jobs: Job[]; next: string | null }> {
    const body = await this.transport.request<JobList>('GET', queryString(this._filter, limit, cursor));
    const list = isRecord(body) && Array.isArray(body.jobs) ? body.jobs : [];
    const jobs = list.map(asJob).filter((j): j is Job => j !== null);
    const next = isRecord(body) && typeof body.next === 'string' && body.next ? body.next : null;
    return { jobs, next };
  }

  /**
   * Pages from the top until one reaches the horizon of the rows shown now (none loaded
   * yet: the first page only; everything loaded: to the end). Each page is the truth about
   * its window: known rows of this query inside it that it does not hold are gone.
   */
  private async readFromTop(generation: number): Promise<void> {
    const stopAt = this.horizon;
    let cursor: string | null = null;
    let prev: Job | null = null;
    let first = true;
    for (;;) {
      const since = this.tick;
      const page = await this.fetchPage(first ? this.firstPage : this.nextPage, cursor);
      if (generation !== this.generation) {
        return;
      }
      const oldest = page.jobs.length ? page.jobs[page.jobs.length - 1] : null;
      const last =
        page.next === null ||
        oldest === null ||
        stopAt === null ||
        (stopAt !== '' && oldest.created_at <= stopAt);
      const above = prev;
      this.batch(() => {
        this.reconcileWindow(page.jobs, above, page.next, since);
        this.applyPage(page.jobs, page.next, last);
      });
      if (last) {
        return;
      }
      prev = oldest;
      cursor = page.next;
      first = false;
    }
  }

  /**
   * Known rows of the current query inside a page's window — after `prev` (the previous
   * page's last row; none: the top) down to the page's last row (or the end, for the last
   * page) — that the page does not hold. Rows the stream touched since the page was asked
   * for are left alone: they may be newer than the page.
   */
  private reconcileWindow(page: Job[], prev: Job | null, next: string | null, since: number): void {
    const ids = new Set(page.map(j => j.id));
    const oldest = page.length ? page[page.length - 1] : null;
    if (oldest === null && next !== null) {
      return; // a page with a cursor and no rows: nothing to learn
    }
    for (const job of [...this.jobs.values()]) {
      if (ids.has(job.id) || (this.touched.get(job.id) ?? -1) > since) {
        continue;
      }
      if (!matchesState(job, this._filter.state) || !matchesKind(job, this._filter.kind)) {
        continue;
      }
      const belowPrev = prev === null || compareJobs(prev, job) < 0;
      const aboveOldest = next === null || (oldest !== null && compareJobs(job, oldest) <= 0);
      if (belowPrev && aboveOldest) {
        this.remove(job.id, false);
      }
    }
  }

  /** Rows of a page; `settle`: the page ends a read, so the horizon moves to it. */
  private applyPage(page: Job[], next: string | null, settle: boolean): void {
    for (const job of page) {
      this.upsert(job, false);
    }
    if (page.length) {
      this.lastOfWindow = page[page.length - 1];
    }
    if (settle) {
      this.cursor = next;
      this._complete = next === null;
      this._loaded = true;
      if (next === null) {
        this.horizon = '';
      } else if (page.length) {
        this.horizon = page[page.length - 1].created_at;
      }
    }
    this.invalidate(true);
  }

  // ------------------------------------------------------------------ updates

  /**
   * A job summary from the stream (`live`), an action's answer or a re-read: inserted or
   * updated when it is the fresher copy. Returns true when it changed what we hold.
   */
  applyJob(value: unknown, live = false): boolean {
    const job = asJob(value);
    if (!job) {
      return false;
    }
    let changed = false;
    this.batch(() => {
      changed = this.upsert(job, live);
    });
    return changed;
  }

  /** A job was deleted (stream `deleted`, or our own Delete). */
  applyDeleted(id: string): void {
    this.batch(() => {
      this.remove(id, true);
    });
  }

  /** Several updates, one `changed`. */
  batch(fn: () => void): void {
    this.batchDepth += 1;
    try {
      fn();
    } finally {
      this.batchDepth -= 1;
      if (this.batchDepth === 0) {
        this.flush();
      }
    }
  }

  private upsert(job: Job, live: boolean): boolean {
    if (this.tombstones.has(job.id)) {
      return false; // deleted: ids are never reused, so any later copy is an older one
    }
    if (live) {
      this.touched.set(job.id, ++this.tick);
    }
    const current = this.jobs.get(job.id);
    if (!fresher(current, job)) {
      return false;
    }
    if (live && !isTerminal(job.status) && !this.pinned.has(job.id)) {
      this.pinned.add(job.id);
      const h = this.horizon;
      if (h !== '' && (h === null || job.created_at < h)) {
        this.invalidate(true); // it was below the loaded window: now it shows
      }
    }
    if (current && sameSummary(current, job)) {
      return false;
    }
    this.jobs.set(job.id, job);
    if (!current || current.created_at !== job.created_at) {
      this.sorted = null;
    } else if (this.sorted) {
      const i = this.sorted.indexOf(current);
      if (i >= 0) {
        this.sorted[i] = job;
      } else {
        this.sorted = null;
      }
    }
    this.invalidate(!current || current.status !== job.status || current.name !== job.name);
    this.note(job.id);
    const from = current ? current.status : null;
    if (from !== job.status) {
      this.transition.emit({ job, from, live });
    }
    return true;
  }

  /** Keep a job shown whatever the horizon (restored active work). */
  pin(id: string): void {
    if (!this.pinned.has(id)) {
      this.pinned.add(id);
      this.invalidate(true);
      this.flush();
    }
  }

  private remove(id: string, tombstone: boolean): void {
    if (tombstone) {
      this.tombstones.add(id);
      if (this.tombstones.size > 10_000) {
        this.tombstones.delete(this.tombstones.values().next().value as string);
      }
    }
    this.touched.delete(id);
    if (this.jobs.delete(id)) {
      this.pinned.delete(id);
      this.sorted = null;
      this.invalidate(true);
      this.note(id);
    }
  }

  private invalidate(rows: boolean): void {
    this.visibleCache = null; // it holds the job objects, which an update replaces
    this.pendingChange = this.pendingChange ?? { rows: false, ids: new Set() };
    this.pendingChange.rows = this.pendingChange.rows || rows;
  }

  private note(id: string): void {
    this.pendingChange = this.pendingChange ?? { rows: false, ids: new Set() };
    this.pendingChange.ids.add(id);
  }

  private flush(): void {
    if (this.batchDepth > 0 || !this.pendingChange) {
      return;
    }
    const change = this.pendingChange;
    this.pendingChange = null;
    this.changed.emit(change);
  }
}

/** The fields a row shows (cheap test for "nothing new": heartbeats re-send the same row). */
function sameSummary(a: Job, b: Job): boolean {
  return (
    a.last_seq === b.last_seq &&
    a.status === b.status &&
    a.name === b.name &&
    a.progress.done === b.progress.done &&
    a.progress.total === b.progress.total &&
    a.progress.eta_s === b.progress.eta_s &&
    a.counts.completed === b.counts.completed &&
    a.counts.failed === b.counts.failed &&
    a.counts.passed === b.counts.passed &&
    a.counts.total === b.counts.total &&
    a.finished_at === b.finished_at &&
    a.reason === b.reason
  );
}
