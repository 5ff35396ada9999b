// Section 3: the manager's memory with many running containers. Starts ECI_BENCH_RSS_COUNT (50)
// `sleep 3600` containers under eci in parallel batches, reads VmRSS of the manager (and of its
// nats-server), checks `ps` shows them all running with distinct, disjoint uid ranges, removes them
// and reads RSS again once ps is empty.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchContext } from './context.ts';
import { fmtMiB, inBatches, nowMs, rssKiB } from './stats.ts';

export interface RssResult {
  count: number;
  batch: number;
  started: number;
  failures: string[];
  startAllMs: number;
  removeAllMs: number;
  emptyAfterMs: number;
  manager: { atStartKiB: number; idleKiB: number; loadedKiB: number; afterKiB: number; perContainerKiB: number };
  nats: { idleKiB: number; loadedKiB: number; afterKiB: number };
  ps: { running: number; total: number; distinctUidRanges: number; distinctGidRanges: number; overlapping: number; rangesHeld: number; states: Record<string, number> };
  psAfter: { total: number; rangesHeld: number; states: Record<string, number> };
  runDirLeft: string[];
}

type Ps = Awaited<ReturnType<BenchContext['m']['ps']>>;

function natsPid(c: BenchContext): number {
  try {
    return Number(readFileSync(join(c.m.dir, 'state', 'nats.pid'), 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}

function countStates(ps: Ps): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of ps.containers) out[x.state] = (out[x.state] ?? 0) + 1;
  return out;
}

export async function benchRss(c: BenchContext, atStartKiB: number): Promise<RssResult> {
  const { rssCount: count, rssBatch: batch } = c.config;
  const pid = c.m.pid();
  const np = natsPid(c);
  const names = Array.from({ length: count }, (_, i) => `eci-bench-rss-${String(i).padStart(2, '0')}`);
  const before = await c.m.ps();
  if (before.containers.length) c.say(`[rss] note: ps already lists ${before.containers.length} containers before the start`);
  await sleep(1000);
  const idleKiB = rssKiB(pid);
  const natsIdle = np ? rssKiB(np) : NaN;
  c.say(`[rss] manager idle ${fmtMiB(idleKiB)}; starting ${count} containers, ${batch} at a time`);
  let started = 0;
  const failures: string[] = [];
  let removed = false;
  try {
    const t0 = nowMs();
    await inBatches(names, batch, async (name) => {
      if (c.stopping()) throw new Error('interrupted');
      const r = await c.d.docker(['run', '-d', '--name', name, '--network', 'none', '--runtime=eci', c.image, 'sleep', '3600'], { timeoutMs: 120_000 });
      if (r.code !== 0) {
        // Keep going: how many fail, and which, says more than the first failure alone.
        failures.push(`${name} (${nowMs() - t0 | 0} ms): exit ${r.code}: ${r.stderr.trim()}`);
        c.say(`[rss] FAILED ${failures.at(-1)}`);
      } else started++;
    });
    const startAllMs = nowMs() - t0;
    if (started === 0) throw new Error(`no container started: ${failures[0]}`);
    await sleep(2000);
    const loadedKiB = rssKiB(pid);
    const natsLoaded = np ? rssKiB(np) : NaN;
    const ps = await c.m.ps();
    const mine = ps.containers;
    const running = mine.filter((x) => x.state === 'running');
    const uids = new Set(running.map((x) => x.uid?.hostID));
    const gids = new Set(running.map((x) => (x as { gid?: { hostID: number } }).gid?.hostID));
    const ranges = running
      .map((x) => x.uid as { hostID: number; size?: number } | undefined)
      .filter((u): u is { hostID: number; size?: number } => !!u)
      .sort((a, b) => a.hostID - b.hostID);
    let overlapping = 0;
    for (let i = 1; i < ranges.length; i++) if (ranges[i - 1].hostID + (ranges[i - 1].size ?? 65536) > ranges[i].hostID) overlapping++;
    c.say(`[rss] ${started} started in ${(startAllMs / 1000).toFixed(1)} s; manager ${fmtMiB(loadedKiB)}; removing them`);

    const t1 = nowMs();
    const rm = await c.d.docker(['rm', '-f', ...names], { timeoutMs: 300_000 });
    const removeAllMs = nowMs() - t1;
    removed = true;
    if (rm.code !== 0) c.say(`[rss] warning: docker rm -f: exit ${rm.code}: ${rm.stderr.trim()}`);
    let after = await c.m.ps();
    const t2 = nowMs();
    while (after.containers.length > 0 && nowMs() - t2 < 30_000) {
      await sleep(200);
      after = await c.m.ps();
    }
    const emptyAfterMs = nowMs() - t1;
    await sleep(2000);
    const afterKiB = rssKiB(pid);
    let runDirLeft: string[] = [];
    try {
      runDirLeft = readdirSync(join(c.m.dir, 'run', 'containers'));
    } catch { /* no dir */ }
    return {
      count, batch, started, failures, startAllMs, removeAllMs, emptyAfterMs,
      manager: { atStartKiB, idleKiB, loadedKiB, afterKiB, perContainerKiB: (loadedKiB - idleKiB) / started },
      nats: { idleKiB: natsIdle, loadedKiB: natsLoaded, afterKiB: np ? rssKiB(np) : NaN },
      ps: {
        running: running.length, total: mine.length, distinctUidRanges: uids.size, distinctGidRanges: gids.size, overlapping,
        rangesHeld: Object.keys(ps.ranges ?? {}).length, states: countStates(ps),
      },
      psAfter: { total: after.containers.length, rangesHeld: Object.keys(after.ranges ?? {}).length, states: countStates(after) },
      runDirLeft,
    };
  } finally {
    if (!removed) await c.d.docker(['rm', '-f', ...names], { timeoutMs: 300_000 }).catch(() => {});
  }
}

export function reportRss(r: RssResult): string[] {
  const m = r.manager;
  const ok = r.failures.length === 0 && r.ps.running === r.count && r.ps.distinctUidRanges === r.count && r.ps.overlapping === 0;
  const st = (s: Record<string, number>) => Object.entries(s).map(([k, v]) => `${k}=${v}`).join(' ') || 'none';
  return [
    `3. Manager RSS with ${r.started} running containers (${r.count} asked, ${r.batch} at a time, in ${(r.startAllMs / 1000).toFixed(1)} s)`,
    ...r.failures.slice(0, 3).map((f) => `   START FAILED ${f}`),
    ...(r.failures.length > 3 ? [`   ... ${r.failures.length - 3} more failures (see last-report.json)`] : []),
    `   manager VmRSS: fresh ${fmtMiB(m.atStartKiB)}, idle before ${fmtMiB(m.idleKiB)}, with ${r.started} ${fmtMiB(m.loadedKiB)}, after removal ${fmtMiB(m.afterKiB)}`,
    `   per running container: ${(m.perContainerKiB).toFixed(0)} KiB (${fmtMiB(m.loadedKiB - m.idleKiB)} total); nats-server ${fmtMiB(r.nats.idleKiB)} -> ${fmtMiB(r.nats.loadedKiB)} -> ${fmtMiB(r.nats.afterKiB)}`,
    `   ps: ${r.ps.running}/${r.count} running (${st(r.ps.states)}), ${r.ps.distinctUidRanges} distinct uid / ${r.ps.distinctGidRanges} gid ranges, ${r.ps.overlapping} overlaps, ${r.ps.rangesHeld} held: ${ok ? 'OK' : 'MISMATCH'}`,
    `   docker rm -f of all: ${(r.removeAllMs / 1000).toFixed(1)} s; ps empty after ${(r.emptyAfterMs / 1000).toFixed(1)} s: ${r.psAfter.total === 0 ? 'yes' : `NO (${st(r.psAfter.states)})`}, ranges held ${r.psAfter.rangesHeld}, run dirs left ${r.runDirLeft.length}`,
  ];
}
