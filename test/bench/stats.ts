// Shared timing and statistics for the benchmark suite (no test framework: plain functions).
import { readFileSync } from 'node:fs';

/** Monotonic clock in milliseconds (fractional). */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Runs `f` and returns how long it took in ms along with its result. */
export async function timed<T>(f: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = nowMs();
  const value = await f();
  return { ms: nowMs() - t0, value };
}

/** Quantile with linear interpolation between closest ranks (R type 7, numpy default). */
export function quantile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return NaN;
  const s = [...samples].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

export const median = (s: readonly number[]): number => quantile(s, 0.5);

export interface Summary {
  n: number;
  median: number;
  p90: number;
  mean: number;
  min: number;
  max: number;
  stdev: number;
}

export function summarize(samples: readonly number[]): Summary {
  const n = samples.length;
  const mean = n ? samples.reduce((a, b) => a + b, 0) / n : NaN;
  const stdev = n > 1 ? Math.sqrt(samples.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  return {
    n,
    median: median(samples),
    p90: quantile(samples, 0.9),
    mean,
    min: n ? Math.min(...samples) : NaN,
    max: n ? Math.max(...samples) : NaN,
    stdev,
  };
}

/** Ratio of the medians (the headline number) and the median of the per-round ratios. */
export function ratios(a: readonly number[], b: readonly number[]): { ofMedians: number; pairedMedian: number } {
  const paired = a.slice(0, Math.min(a.length, b.length)).map((x, i) => x / b[i]);
  return { ofMedians: median(a) / median(b), pairedMedian: median(paired) };
}

/**
 * Runs the variants round-robin in the given order (a, b, a, b, ...): `warmup` discarded rounds,
 * then `n` measured ones. Each variant returns its own duration in ms (so it can exclude setup).
 */
export async function interleaved(
  variants: Record<string, () => Promise<number>>,
  o: { n: number; warmup: number; shouldStop?: () => boolean; onRound?: (i: number) => void },
): Promise<Record<string, number[]>> {
  const names = Object.keys(variants);
  const out: Record<string, number[]> = Object.fromEntries(names.map((k) => [k, []]));
  for (let i = 0; i < o.warmup + o.n; i++) {
    if (o.shouldStop?.()) throw new Error('interrupted');
    for (const k of names) {
      const ms = await variants[k]();
      if (i >= o.warmup) out[k].push(ms);
    }
    o.onRound?.(i - o.warmup);
  }
  return out;
}

/** Runs `f` over `items` with at most `limit` in flight, keeping the order of results. */
export async function inBatches<T, R>(items: readonly T[], limit: number, f: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += limit) {
    out.push(...(await Promise.all(items.slice(i, i + limit).map((x, j) => f(x, i + j)))));
  }
  return out;
}

/** VmRSS of a process in KiB (NaN if it is gone). */
export function rssKiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

export const fmtMs = (ms: number): string => (Number.isFinite(ms) ? `${ms.toFixed(1)} ms` : 'n/a');
export const fmtX = (r: number): string => (Number.isFinite(r) ? `${r.toFixed(3)}x` : 'n/a');
export const fmtMiB = (kib: number): string => (Number.isFinite(kib) ? `${(kib / 1024).toFixed(1)} MiB` : 'n/a');

/** Left-aligned text table; numbers are right-aligned. */
export function table(rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map(String));
  const w = cells[0].map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r, ri) =>
      r
        .map((c, i) => (ri > 0 && /^[-+0-9.]/.test(c) && i > 0 ? c.padStart(w[i]) : c.padEnd(w[i])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** Rounds every number in a JSON-able value to 3 decimals (for the report file). */
export function rounded<T>(v: T): T {
  return JSON.parse(JSON.stringify(v, (_, x) => (typeof x === 'number' && !Number.isInteger(x) ? Math.round(x * 1000) / 1000 : x)));
}
