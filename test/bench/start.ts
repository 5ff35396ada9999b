// Section 1: container start time, eci vs plain runc, through the same dockerd.
//   1a. `docker run --rm --network none --runtime=X IMG true`, interleaved eci/runc, N each.
//   1b. the same through timestamping wrappers (runtimes eci-timed and runc-timed): how long each
//       runtime call (create, start, delete, ...) takes inside the engine. Separate runs, so the
//       wrappers' own cost (a bash per call) never enters the ratio of 1a.
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { timedRun, type BenchContext } from './context.ts';
import { fmtMs, fmtX, interleaved, median, ratios, summarize, table, type Summary } from './stats.ts';

export const TARGET_RATIO = 1.25;
export const GOAL_RATIO = 1.1;

export interface StartResult {
  n: number;
  warmup: number;
  eci: Summary;
  runc: Summary;
  ratio: number;
  pairedRatio: number;
  p90Ratio: number;
  target: number;
  goal: number;
  verdict: string;
  samples: { eci: number[]; runc: number[] };
  calls?: CallsResult;
}

export interface CallsResult {
  n: number;
  /** Per runtime: verb sequence of a typical run, median ms per verb, median runtime ms per run. */
  byRuntime: Record<string, { sequence: string; perVerb: Record<string, { n: number; median: number; p90: number }>; perRun: Summary; wall: Summary }>;
  verbRatios: Record<string, number>;
  /** Calls without a container id (e.g. `features`), by runtime. */
  other: Record<string, string[]>;
}

/** A bash wrapper that runs `real` and appends "<t0> <t1> <rc> <args>" (epoch seconds) to `log`. */
export function writeTimingWrapper(path: string, real: string, log: string): void {
  writeFileSync(
    path,
    `#!/bin/bash\nt0=$EPOCHREALTIME\n${JSON.stringify(real)} "$@"\nrc=$?\nt1=$EPOCHREALTIME\n` +
      `printf '%s %s %s %s\\n' "$t0" "$t1" "$rc" "$*" >> ${JSON.stringify(log)}\nexit $rc\n`,
  );
  chmodSync(path, 0o755);
}

const VERBS = new Set(['create', 'start', 'delete', 'kill', 'state', 'run', 'exec', 'features', 'ps', 'update', 'pause', 'resume', 'events', 'spec', 'checkpoint', 'restore']);
const VALUE_FLAGS = new Set(['--root', '--log', '--log-format', '--criu', '--rootless']);

interface Call { verb: string; id?: string; ms: number; t0: number; rc: number }

function parseCalls(log: string): Call[] {
  let text = '';
  try {
    text = readFileSync(log, 'utf8');
  } catch {
    return [];
  }
  const out: Call[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length < 3) continue;
    const [t0, t1, rc] = [Number(f[0].replace(',', '.')), Number(f[1].replace(',', '.')), Number(f[2])];
    const args = f.slice(3);
    let verb = '?';
    for (let i = 0; i < args.length; i++) {
      if (VALUE_FLAGS.has(args[i])) { i++; continue; }
      if (VERBS.has(args[i])) { verb = args[i]; break; }
    }
    const id = args.find((a) => /^[0-9a-f]{64}$/.test(a));
    out.push({ verb, id, ms: (t1 - t0) * 1000, t0, rc });
  }
  return out;
}

async function measureCalls(c: BenchContext): Promise<CallsResult> {
  const names = Object.keys(c.callLogs);
  for (const k of names) writeFileSync(c.callLogs[k], '');
  const walls = await interleaved(
    Object.fromEntries(names.map((k) => [k, () => timedRun(c, k, c.image)])),
    { n: c.config.callsN, warmup: 1, shouldStop: c.stopping },
  );
  await sleep(500); // a late asynchronous call (if any) lands in the log
  const res: CallsResult = { n: c.config.callsN, byRuntime: {}, verbRatios: {}, other: {} };
  for (const k of names) {
    const calls = parseCalls(c.callLogs[k]);
    const runs = new Map<string, Call[]>();
    for (const x of calls) {
      if (!x.id) {
        (res.other[k] ??= []).push(`${x.verb} ${x.ms.toFixed(1)}ms`);
        continue;
      }
      runs.set(x.id, [...(runs.get(x.id) ?? []), x]);
    }
    // The first run of each runtime was the warmup.
    const measured = [...runs.values()].sort((a, b) => a[0].t0 - b[0].t0).slice(1);
    const perVerb: Record<string, number[]> = {};
    for (const r of measured) for (const x of r) (perVerb[x.verb] ??= []).push(x.ms);
    const seqs = measured.map((r) => r.sort((a, b) => a.t0 - b.t0).map((x) => x.verb + (x.rc ? `(rc=${x.rc})` : '')).join(','));
    const seqCount = new Map<string, number>();
    for (const s of seqs) seqCount.set(s, (seqCount.get(s) ?? 0) + 1);
    const sequence = [...seqCount.entries()].sort((a, b) => b[1] - a[1]).map(([s, n]) => `${s} x${n}`).join(' | ');
    res.byRuntime[k] = {
      sequence,
      perVerb: Object.fromEntries(Object.entries(perVerb).map(([v, s]) => [v, { n: s.length, median: median(s), p90: summarize(s).p90 }])),
      perRun: summarize(measured.map((r) => r.reduce((a, x) => a + x.ms, 0))),
      wall: summarize(walls[k]),
    };
  }
  const [e, r] = names;
  for (const v of Object.keys(res.byRuntime[e]?.perVerb ?? {})) {
    const b = res.byRuntime[r]?.perVerb[v];
    if (b) res.verbRatios[v] = res.byRuntime[e].perVerb[v].median / b.median;
  }
  return res;
}

export async function benchStart(c: BenchContext): Promise<StartResult> {
  const { n, warmup } = c.config;
  c.say(`[start] ${warmup} warmup + ${n} measured runs per runtime, interleaved eci, runc, ...`);
  const s = await interleaved(
    { eci: () => timedRun(c, 'eci', c.image), runc: () => timedRun(c, 'runc-plain', c.image) },
    { n, warmup, shouldStop: c.stopping, onRound: (i) => { if (i >= 0 && (i + 1) % 10 === 0) c.say(`[start]   ${i + 1}/${n}`); } },
  );
  const eci = summarize(s.eci);
  const runc = summarize(s.runc);
  const r = ratios(s.eci, s.runc);
  const res: StartResult = {
    n, warmup, eci, runc, ratio: r.ofMedians, pairedRatio: r.pairedMedian, p90Ratio: eci.p90 / runc.p90,
    target: TARGET_RATIO, goal: GOAL_RATIO,
    verdict: r.ofMedians <= GOAL_RATIO ? 'meets goal' : r.ofMedians <= TARGET_RATIO ? 'meets target, not goal' : 'ABOVE TARGET',
    samples: { eci: s.eci, runc: s.runc },
  };
  if (c.config.callsN > 0 && Object.keys(c.callLogs).length === 2) {
    c.say(`[start] runtime-call timing: ${c.config.callsN} runs per runtime through timestamping wrappers`);
    res.calls = await measureCalls(c);
  }
  return res;
}

export function reportStart(r: StartResult): string[] {
  const lines = [
    `1. Start time: docker run --rm --network none IMG true (N=${r.n} each, ${r.warmup} warmups, interleaved)`,
    ...table([
      ['runtime', 'median', 'p90', 'mean', 'min', 'max'],
      ...(['eci', 'runc'] as const).map((k) => [k === 'runc' ? 'runc-plain' : k, fmtMs(r[k].median), fmtMs(r[k].p90), fmtMs(r[k].mean), fmtMs(r[k].min), fmtMs(r[k].max)]),
    ]).split('\n').map((l) => '   ' + l),
    `   ratio eci/runc: median ${fmtX(r.ratio)} (paired ${fmtX(r.pairedRatio)}, p90 ${fmtX(r.p90Ratio)})   target <= ${fmtX(r.target)}, goal <= ${fmtX(r.goal)}: ${r.verdict}`,
  ];
  if (r.calls) {
    const names = Object.keys(r.calls.byRuntime);
    const verbs = [...new Set(names.flatMap((k) => Object.keys(r.calls!.byRuntime[k].perVerb)))];
    lines.push(`   runtime calls per run (median ms inside the wrapper, N=${r.calls.n}):`);
    lines.push(...table([
      ['runtime', ...verbs, 'sum', 'docker run'],
      ...names.map((k) => {
        const b = r.calls!.byRuntime[k];
        return [k, ...verbs.map((v) => (b.perVerb[v] ? b.perVerb[v].median.toFixed(1) : '-')), b.perRun.median.toFixed(1), b.wall.median.toFixed(1)];
      }),
      ['ratio', ...verbs.map((v) => (r.calls!.verbRatios[v] ? fmtX(r.calls!.verbRatios[v]) : '-')),
        fmtX(r.calls.byRuntime[names[0]].perRun.median / r.calls.byRuntime[names[1]].perRun.median),
        fmtX(r.calls.byRuntime[names[0]].wall.median / r.calls.byRuntime[names[1]].wall.median)],
    ]).split('\n').map((l) => '     ' + l));
    for (const k of names) lines.push(`     ${k} sequence: ${r.calls.byRuntime[k].sequence}`);
  }
  return lines;
}
