// Section "issue17": the rows of issue 17 ("Faster than the engines it plugs into"), each against its
// baseline measured in the same run, once with the machine quiet and once beside a busy neighbour
// (two CPU-burning shell loops, see neighbour.ts). Rows (ECI_BENCH_ROWS picks some; default all):
//   start    `docker run --rm true`, eci vs runc, interleaved (ECI_BENCH_ISSUE17_N runs each, default 10)
//   load20   creation throughput, ECI_BENCH_LOAD_N (100) x `docker run -d`, 20 at a time, eci vs runc
//   load100  the same, all at once
//   run      `eci run --rm busybox true` vs `podman run --rm` of the same busybox (a private Podman)
//   mount    vetted mount+umount p50, eci over runc (mount_lat, 200 calls per run, 3 runs each)
//   flood    a second eci container floods vetted mounts: the first one's mount p99, quiet vs flooded
// ECI_BENCH_PASSES=quiet,busy picks the passes.
import { existsSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { replay } from '../helpers/events.ts';
import { REPO } from '../helpers/manager.ts';
import type { VetterDecisionData } from '../../bus/schemas/v1.ts';
import { runCmd } from '../helpers/run.ts';
import { importPodmanBusybox, podmanAvailable, startPodman } from '../helpers/podman.ts';
import { timedRun, type BenchContext } from './context.ts';
import { loadRun, type LoadRun } from './load.ts';
import { prog, runOut } from './more.ts';
import { inBothPasses, type Pass } from './neighbour.ts';
import { interleaved, median, nowMs } from './stats.ts';

export const ROWS = ['start', 'load20', 'load100', 'run', 'mount', 'flood'] as const;
type Row = (typeof ROWS)[number];

/** One row of one pass: eci's figure, the baseline's, and what the row compares (a ratio or a difference). */
export interface RowResult {
  what: string;
  unit: string;
  eci: number;
  base: number;
  baseName: string;
  /** eci/base for times and rates; for throughput, higher is better. */
  ratio: number;
  note?: string;
}

export interface Issue17Result {
  n: number;
  passes: Partial<Record<Pass, Partial<Record<Row, RowResult>>>>;
  /** The manager's own timing of range allocations during the load rows (debug log only). */
  allocation?: Record<string, AllocTimings>;
  /** eci's load runs (manager RSS and fds at N running). */
  loadRuns: LoadRun[];
  /** Rows that could not be measured, by pass and row: the others still are. */
  errors: string[];
}

export interface AllocTimings { n: number; p50Ms: number; p90Ms: number; maxMs: number; writeP50Ms?: number; writeP90Ms?: number }

function pick<T extends string>(env: string, all: readonly T[]): T[] {
  const v = process.env[env]?.trim();
  if (!v) return [...all];
  const out = v.split(',').map((s) => s.trim()) as T[];
  for (const x of out) if (!all.includes(x)) throw new Error(`${env}: unknown ${x} (known: ${all.join(',')})`);
  return out;
}

const ratioRow = (what: string, unit: string, eci: number[], base: number[], baseName: string): RowResult => ({
  what, unit, eci: median(eci), base: median(base), baseName, ratio: median(eci) / median(base),
});

async function startRow(c: BenchContext, n: number): Promise<RowResult> {
  const s = await interleaved(
    { eci: () => timedRun(c, 'eci', c.image), runc: () => timedRun(c, 'runc-plain', c.image) },
    { n, warmup: 2, shouldStop: c.stopping },
  );
  return ratioRow('docker run --rm true', 'ms', s.eci, s.runc, 'runc');
}

async function loadRow(c: BenchContext, par: number, runs: LoadRun[]): Promise<RowResult> {
  const n = Number(process.env.ECI_BENCH_LOAD_N ?? 100);
  const e = await loadRun(c, 'eci', n, par);
  const r = await loadRun(c, 'runc-plain', n, par);
  runs.push(e);
  const fails = [...e.failures, ...r.failures];
  return {
    what: `${n} x docker run -d, ${par >= n ? 'all at once' : `${par} at a time`}`, unit: '/s',
    eci: e.perSecond, base: r.perSecond, baseName: 'runc', ratio: e.perSecond / r.perSecond,
    note: fails.length ? `${fails.length} failed: ${fails[0]}` : undefined,
  };
}

/** `eci run --rm busybox true` vs `podman run --rm` of the same busybox, interleaved. */
async function runRow(c: BenchContext, n: number): Promise<RowResult> {
  const avail = podmanAvailable();
  if (!avail.ok) throw new Error(`podman: ${avail.reason}`);
  const p = await startPodman();
  try {
    const img = await importPodmanBusybox(p, 'eci-bench-busybox');
    // Podman's default nofile and nproc limits exceed this machine's hard limits, which runc refuses
    // (eci lowers them itself): low fixed ones, enough for `true`.
    const limits = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];
    const eci = async () => {
      const t0 = nowMs();
      // As a user runs it: bin/eci execs eci run's C client (no Node start).
      const r = await runCmd(join(REPO, 'bin/eci'), ['run', '--rm', 'busybox', 'true'], { ...process.env, ...c.m.env }, undefined, 60_000);
      if (r.code !== 0) throw new Error(`eci run exited ${r.code}: ${r.stderr.trim()}`);
      return nowMs() - t0;
    };
    const podman = async () => {
      const t0 = nowMs();
      const r = await p.podman(['run', '--rm', ...p.runFlags, ...limits, img, 'true']);
      if (r.code !== 0) throw new Error(`podman run exited ${r.code}: ${r.stderr.trim()}`);
      return nowMs() - t0;
    };
    const s = await interleaved({ eci, podman }, { n, warmup: 2, shouldStop: c.stopping });
    return ratioRow('eci run --rm busybox true', 'ms', s.eci, s.podman, 'podman run --rm');
  } finally {
    await p.stop();
    // runc leaves the parent of `eci run`'s cgroups; only an empty one is removed.
    for (const root of ['/sys/fs/cgroup', ...(existsSync('/sys/fs/cgroup/cgroup.controllers') ? [] : readdirSync('/sys/fs/cgroup').map((x) => join('/sys/fs/cgroup', x)))]) {
      try { rmdirSync(join(root, 'eci-run')); } catch { /* absent or in use */ }
    }
  }
}

const mountArgs = (bin: string) => ['--cap-add', 'SYS_ADMIN', '-v', `${bin}:/b:ro`];
const parse = (o: string, k: 'p50_us' | 'p99_us') => Number(new RegExp(`${k} ([\\d.]+)`).exec(o)![1]);

/** Vetted mount+umount p50 (eci over runc), and eci's quiet p99 for the flood row. */
async function mountRow(c: BenchContext, bin: string): Promise<{ row: RowResult; eciP99: number[] }> {
  const o: Record<'eci' | 'runc', { p50: number[]; p99: number[] }> = { eci: { p50: [], p99: [] }, runc: { p50: [], p99: [] } };
  const since = new Date();
  for (let i = 0; i < 3 && !c.stopping(); i++) {
    for (const [k, rt] of [['eci', 'eci'], ['runc', 'runc-plain']] as const) {
      const out = await runOut(c, rt, [...mountArgs(bin), c.image, '/b/mount_lat', '200']);
      o[k].p50.push(parse(out, 'p50_us'));
      o[k].p99.push(parse(out, 'p99_us'));
    }
  }
  const row = ratioRow('vetted mount+umount p50', 'us', o.eci.p50, o.runc.p50, 'runc');
  row.note = `+${((row.eci - row.base) / 1000).toFixed(2)} ms${await fastSpans(c, since)}`;
  return { row, eciP99: o.eci.p99 };
}

/**
 * The manager's own account of the row's fast-path calls (audit events since `since`), p50 in us: the
 * watcher thread's time from the kernel's hand-over to its send (inspect), the performer's from there
 * to its answer (perform), and the two together. Not on it: the wake-ups before and after.
 */
async function fastSpans(c: BenchContext, since: Date): Promise<string> {
  const ev = (await replay(c.m.natsUrl, 'eci.v1.evt.vetter.>', since)).map((e) => e.event.data as VetterDecisionData)
    .filter((d) => d.path === 'native' && d.spansUs);
  if (!ev.length) return '; no fast-path calls seen';
  const p50 = (f: (d: VetterDecisionData) => number | undefined) => median(ev.flatMap((d) => { const v = f(d); return v === undefined ? [] : [v]; })).toFixed(0);
  return `; per call, p50 of ${ev.length}: ${p50((d) => d.latencyUs)} us = inspect ${p50((d) => d.spansUs!.inspect)} + perform ${p50((d) => d.spansUs!.perform)}`;
}

/** One eci container's mount p99 while a second one floods vetted mounts, against the quiet p99. */
async function floodRow(c: BenchContext, bin: string, quietP99: number[]): Promise<RowResult> {
  const name = `eci-bench-flood-${process.pid}`;
  const r = await c.d.docker(['run', '-d', '--name', name, '--network', 'none', '--runtime=eci', ...mountArgs(bin), c.image, '/b/mount_lat', '2000000']);
  if (r.code !== 0) throw new Error(`flood container: ${r.stderr.trim()}`);
  try {
    // Wait until the flooding container runs, then a little more for its calls to be under way.
    const end = nowMs() + 30_000;
    while (nowMs() < end) {
      const st = await c.d.docker(['inspect', '-f', '{{.State.Running}}', name]);
      if (st.stdout.trim() === 'true') break;
      await sleep(100);
    }
    await sleep(500);
    const flooded: number[] = [];
    for (let i = 0; i < 3 && !c.stopping(); i++) {
      flooded.push(parse(await runOut(c, 'eci', [...mountArgs(bin), c.image, '/b/mount_lat', '200']), 'p99_us'));
    }
    const still = await c.d.docker(['inspect', '-f', '{{.State.Running}}', name]);
    const row = ratioRow('mount p99 beside a vetted-call flood', 'us', flooded, quietP99, 'same, quiet');
    if (still.stdout.trim() !== 'true') row.note = 'the flood ended early';
    return row;
  } finally {
    await c.d.docker(['rm', '-f', name]);
  }
}

/** p50/p90/max of the manager's 'range allocated' (and 'range written') debug lines since `from`. */
function allocTimings(log: string, from: number): AllocTimings | undefined {
  const ms = (msg: string) => log.slice(from).split('\n').filter((l) => l.includes(`"msg":"${msg}"`))
    .map((l) => { try { return (JSON.parse(l) as { ms: number }).ms; } catch { return NaN; } }).filter(Number.isFinite);
  const a = ms('range allocated');
  if (!a.length) return undefined;
  const q = (v: number[], p: number) => [...v].sort((x, y) => x - y)[Math.min(v.length - 1, Math.floor(v.length * p))];
  const w = ms('range written');
  return { n: a.length, p50Ms: q(a, 0.5), p90Ms: q(a, 0.9), maxMs: Math.max(...a), writeP50Ms: w.length ? q(w, 0.5) : undefined, writeP90Ms: w.length ? q(w, 0.9) : undefined };
}

export async function benchIssue17(c: BenchContext): Promise<Issue17Result> {
  const rows = pick('ECI_BENCH_ROWS', ROWS);
  const passes = pick<Pass>('ECI_BENCH_PASSES', ['quiet', 'busy']);
  const n = Number(process.env.ECI_BENCH_ISSUE17_N ?? 10);
  const bin = rows.includes('mount') || rows.includes('flood') ? await prog(c, 'mount_lat') : '';
  const res: Issue17Result = { n, passes: {}, allocation: {}, loadRuns: [], errors: [] };
  const got = await inBothPasses(c.say, async (pass) => {
    const out: Partial<Record<Row, RowResult>> = {};
    const say = (row: Row) => { const x = out[row]!; c.say(`[issue17 ${pass}] ${row}: eci ${x.eci.toFixed(2)} ${x.unit}, ${x.baseName} ${x.base.toFixed(2)} ${x.unit}, ${x.ratio.toFixed(2)}x${x.note ? ` (${x.note})` : ''}`); };
    let quietP99: number[] = [];
    for (const row of rows) {
      if (c.stopping()) break;
      const logFrom = c.m.log().length;
      try {
        if (row === 'start') out.start = await startRow(c, n);
        if (row === 'load20') out.load20 = await loadRow(c, 20, res.loadRuns);
        if (row === 'load100') out.load100 = await loadRow(c, Number(process.env.ECI_BENCH_LOAD_N ?? 100), res.loadRuns);
        if (row === 'run') out.run = await runRow(c, Math.max(5, Math.round(n / 2)));
        if (row === 'mount') { const m = await mountRow(c, bin); out.mount = m.row; quietP99 = m.eciP99; }
        if (row === 'flood') {
          if (!quietP99.length) quietP99 = (await mountRow(c, bin)).eciP99;
          out.flood = await floodRow(c, bin, quietP99);
        }
      } catch (e) {
        res.errors.push(`${pass} ${row}: ${(e as Error).message.split('\n')[0]}`);
        c.say(`[issue17 ${pass}] ${row} FAILED: ${(e as Error).message.split('\n')[0]}`);
        continue;
      }
      if (row === 'load20' || row === 'load100') {
        const t = allocTimings(c.m.log(), logFrom);
        if (t) res.allocation![`${pass} ${row}`] = t;
      }
      say(row);
    }
    return out;
  }, passes);
  res.passes = got;
  return res;
}

export function reportIssue17(r: Issue17Result): string[] {
  const out = [`Issue 17: each row against its baseline in the same run, quiet and beside two CPU-burning loops (start N=${r.n})`];
  const rows = [...new Set(Object.values(r.passes).flatMap((p) => Object.keys(p ?? {})))] as Row[];
  const cell = (x?: RowResult) => (x ? `eci ${x.eci.toFixed(x.unit === '/s' ? 2 : 0)} ${x.unit} / ${x.baseName} ${x.base.toFixed(x.unit === '/s' ? 2 : 0)} ${x.unit} = ${x.ratio.toFixed(2)}x${x.note ? ` (${x.note})` : ''}` : 'n/a');
  for (const row of rows) {
    const q = r.passes.quiet?.[row];
    const b = r.passes.busy?.[row];
    out.push(`   ${(q ?? b)!.what}:`, `      quiet: ${cell(q)}`, `      busy:  ${cell(b)}`);
  }
  for (const e of r.errors) out.push(`   NOT MEASURED ${e}`);
  for (const [k, t] of Object.entries(r.allocation ?? {})) {
    out.push(`   range allocation wait (${k}, ${t.n} creates): p50 ${t.p50Ms.toFixed(1)} ms, p90 ${t.p90Ms.toFixed(1)} ms, max ${t.maxMs.toFixed(1)} ms` +
      (t.writeP50Ms !== undefined ? `; KV write p50 ${t.writeP50Ms.toFixed(1)} ms, p90 ${t.writeP90Ms!.toFixed(1)} ms` : ''));
  }
  return out;
}
