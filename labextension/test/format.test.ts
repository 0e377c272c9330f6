import { describe, expect, it } from 'vitest';

import { formatDuration, formatMetric, formatProgress, formatRate, formatSeconds } from '../src/view/format';
import { wholeSteps } from '../src/view/chart';

describe('formatProgress', () => {
  it('done/total unit · rate · ETA', () => {
    const p = formatProgress({ done: 12, total: 30, unit: 'epoch', rate: 2.13, eta_s: 8.6 });
    expect(p.text).toBe('12/30 epoch · 2.1 epoch/s · ETA 9s');
    expect(p.fraction).toBeCloseTo(0.4);
  });

  it('leaves out what is unknown', () => {
    expect(formatProgress({ done: 3, total: null, unit: 'it', rate: null, eta_s: null }).text).toBe('3 it');
    expect(formatProgress({ done: 3, total: 10, unit: null, rate: 0.05, eta_s: null }).text).toBe('3/10 · 3.0/min');
    expect(formatProgress({ done: null, total: null, unit: null, rate: null, eta_s: null }).text).toBe('');
    expect(formatProgress(null).text).toBe('');
    expect(formatProgress({ done: 0, total: 0, unit: 'test' }).fraction).toBeNull();
  });

  it('no rate or ETA once the job has ended, and no ETA at 100 %', () => {
    const p = { done: 30, total: 30, unit: 'epoch', rate: 2, eta_s: 0 };
    expect(formatProgress(p, false).text).toBe('30/30 epoch');
    expect(formatProgress(p, true).text).toBe('30/30 epoch · 2.0 epoch/s');
    expect(formatProgress({ done: 1, total: 30, unit: 'epoch', rate: 2, eta_s: 14.5 }, false).text).toBe('1/30 epoch');
  });

  it('big counts get separators, fractions one decimal', () => {
    expect(formatProgress({ done: 1234, total: 10000, unit: 'test', rate: 150.4, eta_s: 3725 }).text).toBe(
      '1,234/10,000 test · 150 test/s · ETA 1h 02m'
    );
    expect(formatProgress({ done: 2.5, total: 10, unit: 'GB' }).text).toBe('2.5/10 GB');
  });
});

describe('formatDuration', () => {
  it('reads like a person would say it', () => {
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(0.2)).toBe('<1s');
    expect(formatDuration(9.4)).toBe('9s');
    expect(formatDuration(65)).toBe('1m 05s');
    expect(formatDuration(3600 * 2 + 180)).toBe('2h 03m');
    expect(formatDuration(86400 * 3 + 3600 * 4)).toBe('3d 4h');
    expect(formatDuration(-1)).toBe('');
    expect(formatDuration(Number.NaN)).toBe('');
  });
});

describe('formatRate', () => {
  it('per second, per minute or per hour', () => {
    expect(formatRate(2.13, 'epoch')).toBe('2.1 epoch/s');
    expect(formatRate(0.05, 'epoch')).toBe('3.0 epoch/min');
    expect(formatRate(0.0001, 'epoch')).toBe('0.4 epoch/h');
    expect(formatRate(0, 'epoch')).toBe('');
    expect(formatRate(5, '')).toBe('5.0/s');
    expect(formatRate(0.998, 'epoch')).toBe('1.0 epoch/s');
    expect(formatRate(0.41, 'test')).toBe('0.41 test/s');
  });
});

describe('formatMetric', () => {
  it('4 significant digits', () => {
    expect(formatMetric(0.123456)).toBe('0.1235');
    expect(formatMetric(12)).toBe('12');
    expect(formatMetric(0.00001234)).toBe('1.23e-5');
    expect(formatMetric('x')).toBe('x');
    expect(formatMetric({})).toBe('');
  });
});

describe('formatSeconds', () => {
  it('short test durations', () => {
    expect(formatSeconds(0.0123)).toBe('12 ms');
    expect(formatSeconds(0.41)).toBe('0.41 s');
    expect(formatSeconds(3.21)).toBe('3.2 s');
    expect(formatSeconds(75)).toBe('1m 15s');
  });
});

describe('chart step ticks', () => {
  it('ticks whole steps only when every step is whole', () => {
    const incrs = wholeSteps([1, 2, 3, null, 5])!;
    expect(incrs.slice(0, 6)).toEqual([1, 2, 5, 10, 20, 50]);
    expect(incrs.every(Number.isInteger)).toBe(true);
    expect(wholeSteps([0, 0.5, 1])).toBeUndefined(); // a user's fractional steps: uPlot's own
  });
});
