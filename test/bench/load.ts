// Section "load": creation throughput and the manager's footprint at scale. For each concurrency in
// ECI_BENCH_LOAD_PAR (default 20) and each runtime (eci, plain runc), creates ECI_BENCH_LOAD_N (100)
// `sleep 3600` containers with `docker run -d`, that many at a time, and reports containers/s. Under
// eci, with all of them running, it reads the manager's (and nats-server's) VmRSS and fd count; then
// it removes them all and reads them again. Runtimes alternate per level so host noise hits both.
import { hangReport } from '../helpers/hang-report.ts';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchContext } from './context.ts';
import { fmtMiB, nowMs, rssKiB } from './stats.ts';
import { cpuDelta, treeCpu } from './cpu.ts';

/** Runs `f` over `items` with `par` always in flight (a pool, not batches: one slow run stalls no batch). */
export async function pool<T>(items: readonly T[], par: number, f: (x: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(par, items.length) }, async () => {
    while (next < items.length) await f(items[next++]);
  }));
}

export interface LoadRun {
  runtime: string;
  n: number;
  par: number;
  started: number;
  failures: string[];
  createMs: number;
  perSecond: number;
  removeMs: number;
  /**
   * CPU ms per container while creating, by process name, over the manager's tree, nats-server and
   * dockerd's tree (containerd, shims and what they reaped: runc, eci-runc): where eci's extra goes.
   */
  cpuMsPerContainer?: Record<string, number>;
  /** eci only: the manager (and nats-server) with all n running, and after removal. */
  manager?: { idleKiB: number; loadedKiB: number; afterKiB: number; fdsIdle: number; fdsLoaded: number; fdsAfter: number; natsLoadedKiB: number };
}

export interface LoadResult { runs: LoadRun[] }

function intList(name: string, dflt: number[]): number[] {
  const v = process.env[name]?.trim();
  if (!v) return dflt;
  const out = v.split(',').map((s) => Number(s.trim()));
  if (out.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`${name}=${v}: expected positive integers, comma-separated`);
  return out;
}

const fds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

async function waitEmpty(c: BenchContext): Promise<void> {
  const end = nowMs() + 60_000;
  while (nowMs() < end) {
    const ps = await c.m.ps();
    if (!ps.containers.length && !Object.keys(ps.ranges).length) return;
    await sleep(200);
  }
}

export async function loadRun(c: BenchContext, runtime: string, n: number, par: number): Promise<LoadRun> {
  const names = Array.from({ length: n }, (_, i) => `eci-bench-load-${runtime}-${i}`);
  const pid = c.m.pid();
  const eci = runtime === 'eci';
  let natsPid = 0;
  try { natsPid = Number(readFileSync(join(c.m.dir, 'state', 'nats.pid'), 'utf8')); } catch { /* external */ }
  const idleKiB = rssKiB(pid);
  const fdsIdle = fds(pid);
  const failures: string[] = [];
  let started = 0;
  const roots = [pid, natsPid, c.d.pid].filter((p) => p > 0);
  const cpu0 = treeCpu(roots, c.d.dir);
  const t0 = nowMs();
  try {
    await pool(names, par, async (name) => {
      if (c.stopping()) throw new Error('interrupted');
      const r = await c.d.docker(['run', '-d', '--name', name, '--network', 'none', `--runtime=${runtime}`, c.image, 'sleep', '3600'], { timeoutMs: 120_000 });
      if (r.code !== 0) failures.push(`${name}: exit ${r.code}: ${r.stderr.trim().split('\n')[0]}`);
      else started++;
    });
    const createMs = nowMs() - t0;
    const cpu = cpuDelta(cpu0, treeCpu(roots, c.d.dir));
    const cpuMsPerContainer = Object.fromEntries(Object.entries(cpu).filter(([, v]) => v > 0).map(([k, v]) => [k, +(v / Math.max(1, started)).toFixed(1)]));
    const loadedKiB = rssKiB(pid);
    const fdsLoaded = fds(pid);
    const natsLoadedKiB = natsPid ? rssKiB(natsPid) : NaN;
    const t1 = nowMs();
    // One at a time: concurrent removals can deadlock Docker 20.10.24's libnetwork (see test/integration/load.test.ts).
    await pool(names, 1, (name) => c.d.docker(['rm', '-f', name], { timeoutMs: 120_000 }).catch(async (e: Error) => {
      // A rm -f that hangs (seen a few times at 100 at once, also with runc): say whose hang it is.
      throw new Error(`${e.message}\n${(await hangReport(c.d, c.m, name)).text}`);
    }));
    const removeMs = nowMs() - t1;
    if (eci) await waitEmpty(c);
    await sleep(1000);
    const run: LoadRun = { runtime, n, par, started, failures, createMs, perSecond: started / (createMs / 1000), removeMs, cpuMsPerContainer };
    if (eci) run.manager = { idleKiB, loadedKiB, afterKiB: rssKiB(pid), fdsIdle, fdsLoaded, fdsAfter: fds(pid), natsLoadedKiB };
    c.say(`[load] ${runtime} x${n}, ${par} at a time: ${started} in ${(createMs / 1000).toFixed(1)} s = ${run.perSecond.toFixed(2)}/s` +
      (run.manager ? `; manager ${fmtMiB(idleKiB)} -> ${fmtMiB(loadedKiB)} -> ${fmtMiB(run.manager.afterKiB)}, fds ${fdsIdle} -> ${fdsLoaded} -> ${run.manager.fdsAfter}` : '') +
      `; CPU ms per container: ${Object.entries(cpuMsPerContainer).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    return run;
  } catch (e) {
    await c.d.docker(['rm', '-f', ...names], { timeoutMs: 300_000 }).catch(() => {});
    throw e;
  }
}

export async function benchLoad(c: BenchContext): Promise<LoadResult> {
  const n = intList('ECI_BENCH_LOAD_N', [100])[0];
  const levels = intList('ECI_BENCH_LOAD_PAR', [20]);
  const runs: LoadRun[] = [];
  for (const par of levels) {
    for (const rt of ['eci', 'runc-plain']) {
      if (c.stopping()) break;
      runs.push(await loadRun(c, rt, n, par));
    }
  }
  return { runs };
}

export function reportLoad(r: LoadResult): string[] {
  const out = ['Load: creation throughput (docker run -d, N containers, P at a time) and the manager at N running'];
  for (const par of [...new Set(r.runs.map((x) => x.par))]) {
    const e = r.runs.find((x) => x.par === par && x.runtime === 'eci');
    const p = r.runs.find((x) => x.par === par && x.runtime === 'runc-plain');
    const rate = (x?: LoadRun) => (x ? `${x.perSecond.toFixed(2)}/s (${x.started}/${x.n} in ${(x.createMs / 1000).toFixed(1)} s, rm ${(x.removeMs / 1000).toFixed(1)} s)` : 'n/a');
    out.push(`   P=${par}: eci ${rate(e)}; runc ${rate(p)}; eci/runc throughput ${e && p ? (e.perSecond / p.perSecond).toFixed(2) : 'n/a'}`);
    if (e?.manager) {
      const m = e.manager;
      out.push(`   manager VmRSS idle ${fmtMiB(m.idleKiB)}, with ${e.started} running ${fmtMiB(m.loadedKiB)} (${((m.loadedKiB - m.idleKiB) / Math.max(1, e.started)).toFixed(0)} KiB each), after removal ${fmtMiB(m.afterKiB)}; fds ${m.fdsIdle} -> ${m.fdsLoaded} -> ${m.fdsAfter}; nats-server ${fmtMiB(m.natsLoadedKiB)}`);
    }
    for (const x of [e, p]) for (const f of x?.failures.slice(0, 3) ?? []) out.push(`   FAILED ${x!.runtime} ${f}`);
  }
  return out;
}
