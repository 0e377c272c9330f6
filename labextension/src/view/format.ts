/**
 * Numbers and times as people read them. Pure functions: unit-tested and shared by every view.
 */

import { Progress } from '../api/types';

function finite(x: unknown): x is number {
  return typeof x === 'number' && Number.isFinite(x);
}

/** 12, 12.5, 1,234 — counts are integers in practice; fractions keep one decimal. */
export function formatCount(n: number): string {
  if (Number.isInteger(n)) {
    return n.toLocaleString('en-US');
  }
  return n.toLocaleString('en-US', { maximumFractionDigits: 1 });
}

/** `9s`, `1m 05s`, `2h 03m`, `3d 4h`. */
export function formatDuration(seconds: number): string {
  if (!finite(seconds) || seconds < 0) {
    return '';
  }
  if (seconds > 0 && seconds < 0.5) {
    return '<1s';
  }
  const s = Math.round(seconds);
  if (s < 60) {
    return `${s}s`;
  }
  const m = Math.floor(s / 60);
  if (m < 60) {
    return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  }
  const h = Math.floor(m / 60);
  if (h < 24) {
    return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  }
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** `2.1 epoch/s`; slow rates per minute or hour so they don't read `0.0 epoch/s`. */
export function formatRate(rate: number, unit: string): string {
  if (!finite(rate) || rate <= 0) {
    return '';
  }
  const per = (n: string, span: string) => (unit ? `${n} ${unit}/${span}` : `${n}/${span}`);
  if (rate >= 100) {
    return per(Math.round(rate).toLocaleString('en-US'), 's');
  }
  if (rate >= 0.95) {
    return per(rate.toFixed(1), 's');
  }
  if (rate >= 0.1) {
    return per(rate.toFixed(2), 's');
  }
  if (rate * 60 >= 1) {
    return per((rate * 60).toFixed(1), 'min');
  }
  return per((rate * 3600).toFixed(1), 'h');
}

/** A test's run time: `12 ms`, `0.41 s`, `3.2 s`, then as a duration. */
export function formatSeconds(seconds: number): string {
  if (!finite(seconds) || seconds < 0) {
    return '';
  }
  if (seconds < 0.1) {
    return `${Math.round(seconds * 1000)} ms`;
  }
  if (seconds < 10) {
    return `${seconds.toFixed(seconds < 1 ? 2 : 1)} s`;
  }
  return formatDuration(seconds);
}

export interface ProgressText {
  /** `12/30 epoch · 2.1 epoch/s · ETA 9s` (parts that are unknown are left out). */
  text: string;
  /** 0..1 when done and total are known. */
  fraction: number | null;
}

/** The progress line. ETA only while the job can still progress. */
export function formatProgress(progress: Partial<Progress> | null | undefined, active = true): ProgressText {
  const p = progress ?? {};
  const unit = typeof p.unit === 'string' ? p.unit : '';
  const parts: string[] = [];
  let fraction: number | null = null;
  if (finite(p.done)) {
    if (finite(p.total) && p.total > 0) {
      parts.push(`${formatCount(p.done)}/${formatCount(p.total)}${unit ? ' ' + unit : ''}`);
      fraction = Math.min(1, Math.max(0, p.done / p.total));
    } else {
      parts.push(`${formatCount(p.done)}${unit ? ' ' + unit : ''}`);
    }
  }
  if (active && finite(p.rate) && p.rate > 0) {
    parts.push(formatRate(p.rate, unit));
  }
  if (active && finite(p.eta_s) && p.eta_s >= 0 && fraction !== 1) {
    parts.push(`ETA ${formatDuration(p.eta_s)}`);
  }
  return { text: parts.join(' · '), fraction };
}

/** Metric values: 4 significant digits, no exponent for everyday magnitudes. */
export function formatMetric(value: unknown): string {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) {
      return String(value);
    }
    if (Number.isInteger(value)) {
      return String(value);
    }
    const abs = Math.abs(value);
    if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) {
      return value.toExponential(2);
    }
    return Number(value.toPrecision(4)).toString();
  }
  if (typeof value === 'string') {
    return value;
  }
  if (typeof value === 'boolean') {
    return String(value);
  }
  return '';
}

/** Milliseconds since the epoch of an ISO 8601 time, or null. */
export function parseTime(iso: string | null | undefined): number | null {
  if (!iso) {
    return null;
  }
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

/** A time of day, with the date when it is not today. */
export function formatClock(ms: number, now: number = Date.now()): string {
  const d = new Date(ms);
  const time = d.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const today = new Date(now);
  if (d.toDateString() === today.toDateString()) {
    return time;
  }
  const date = d.toLocaleDateString('en-CA'); // YYYY-MM-DD
  return `${date} ${time}`;
}
