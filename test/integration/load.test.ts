// Load: 100 containers created concurrently through Docker (ECI_LOAD_N; ECI_LOAD_PAR at a time,
// default all at once; lower it where a slow dockerd times out). Every container gets a distinct
// range (read back from the kernel's uid_map), every container's events are in the stream once and
// in lifecycle order, and after deletion nothing is left: ranges, mounts, processes, fds.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childrenOf, mountsUnder, until } from '../helpers/bundle.ts';
import { dockerdAvailable, RUN_FLAGS, type Dockerd } from '../helpers/dockerd.ts';
import { startEciDocker, stopEciDocker } from '../helpers/eci-docker.ts';
import { replay } from '../helpers/events.ts';
import { hangReport } from '../helpers/hang-report.ts';
import type { TestManager } from '../helpers/manager.ts';
import { FIRST } from '../helpers/manager.ts';

const avail = dockerdAvailable();
const N = Number(process.env.ECI_LOAD_N ?? 100);
const PAR = Number(process.env.ECI_LOAD_PAR ?? 100);
const LIFECYCLE = ['container.created', 'container.mapped', 'container.mounted', 'container.running', 'container.stopped'];

/** Runs `f` over `items`, `par` at a time. */
async function pool<T, R>(items: T[], par: number, f: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(par, items.length) }, async () => {
    while (next < items.length) { const i = next++; out[i] = await f(items[i]); }
  }));
  return out;
}

const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

describe.skipIf(!avail.ok)(`load: ${N} containers through Docker${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let m: TestManager;
  let d: Dockerd;
  let img: string;

  beforeAll(async () => {
    ({ m, d, img } = await startEciDocker());
  });
  afterAll(async () => {
    await stopEciDocker({ m, d });
  });

  it(`creates ${N} (${PAR} at a time) with distinct ranges and ordered events, and leaves nothing after deletion`, async () => {
    // Warm up (first run loads the image, starts the helper server), then take the baseline.
    const w = await d.docker(['run', '--rm', ...RUN_FLAGS, '--runtime=eci', img, 'true']);
    expect(w.code, w.stderr).toBe(0);
    await until(async () => (await m.ps()).containers.length === 0, 'the warm-up container gone');
    const mpid = m.pid();
    const natsPid = Number(readFileSync(join(m.dir, 'state', 'nats.pid'), 'utf8'));
    const baseFds = fdCount(mpid);
    const baseChildren = childrenOf(mpid).filter((p) => p !== natsPid).sort();
    const containersDir = join(m.dir, 'run', 'containers');

    const t0 = performance.now();
    const ids = await pool(Array.from({ length: N }, (_, i) => i), PAR, async (i) => {
      const r = await d.docker(['run', '-d', '--name', `load${i}`, ...RUN_FLAGS, '--runtime=eci', img, 'sleep', '600'], { timeoutMs: 120_000 });
      expect(r.code, `load${i}: ${r.stderr}`).toBe(0);
      return r.stdout.trim();
    });
    const secs = (performance.now() - t0) / 1000;
    console.log(`load: ${N} containers created through Docker, ${PAR} at a time, in ${secs.toFixed(1)} s (${(N / secs).toFixed(2)} containers/s)`);

    // Distinct ranges, as the kernel sees them, and as the manager holds them.
    const pids = (await d.docker(['inspect', '-f', '{{.State.Pid}}', ...ids])).stdout.trim().split('\n').map(Number);
    expect(pids).toHaveLength(N);
    const hostIds = pids.map((p) => Number(readFileSync(`/proc/${p}/uid_map`, 'utf8').trim().split(/\s+/)[1]));
    expect(new Set(hostIds).size).toBe(N);
    expect(hostIds.every((h) => h >= FIRST && (h - FIRST) % 65536 === 0)).toBe(true);
    // start's report reaches the manager as the launcher exits, not before the engine answers: wait for it.
    await until(async () => (await m.ps()).containers.filter((c) => c.state === 'running').length === N, `all ${N} running in the manager`, 30_000);
    const ps = await m.ps();
    expect(ps.containers.filter((c) => c.state === 'running')).toHaveLength(N);
    expect(new Set(Object.values(ps.ranges))).toEqual(new Set(ids));
    console.log(`load: manager RSS with ${N} running: ${(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${mpid}/status`, 'utf8'))![1]) / 1024).toFixed(1)} MiB, ${fdCount(mpid)} fds (baseline ${baseFds})`);

    // Removed one at a time: Docker 20.10.24's libnetwork deadlocks when containers on one network
    // leave it concurrently (getSvcRecords locks network then controller, the watch loop's
    // processEndpointDelete controller then network: moby/moby#42545, backported to 20.10's
    // libnetwork only after Debian's 20.10.24). Every rm -f blocks for good then, whatever the
    // runtime (seen here with runc too). eci's concurrent deletes are tested in docker.test.ts.
    const t1 = performance.now();
    await pool(ids, 1, async (id) => {
      let r = await d.docker(['rm', '-f', id], { timeoutMs: 120_000 }).catch((e: Error) => e);
      if (r instanceof Error) {
        // Once in CI a `docker rm -f` never returned. A hang with an eci-runc call still pending is
        // eci's and fails here; one in the engine alone (seen once with a plain runc container too)
        // is reported and tried once more: eci's own bookkeeping is still checked below.
        const h = await hangReport(d, m, id);
        if (h.eciPending) throw new Error(`${r.message}\n${h.text}`);
        console.warn(`load: ${r.message}; no eci call pending, trying once more\n${h.text}`);
        r = await d.docker(['rm', '-f', id], { timeoutMs: 120_000 }).catch((e: Error) => new Error(`${e.message}\n${h.text}`));
        if (r instanceof Error) throw r;
      }
      expect(r.code, r.stderr).toBe(0);
    });
    console.log(`load: ${N} removed in ${((performance.now() - t1) / 1000).toFixed(1)} s`);

    await until(async () => { const p = await m.ps(); return p.containers.length === 0 && Object.keys(p.ranges).length === 0; }, 'every container and range released', 60_000);
    expect(mountsUnder(containersDir)).toEqual([]);
    expect(readdirSync(containersDir)).toEqual([]);
    await until(() => childrenOf(mpid).filter((p) => p !== natsPid).sort().join() === baseChildren.join(), 'the manager\'s children back to the baseline', 10_000);
    await until(() => Math.abs(fdCount(mpid) - baseFds) <= 4, `manager fds back to ${baseFds} (now ${fdCount(mpid)})`, 10_000);

    // Each container's events: exactly the lifecycle, once each, in order.
    const events = await until(async () => {
      const ev = await replay(m.natsUrl, 'eci.v1.evt.container.>');
      return ev.filter((e) => e.event.type === 'container.stopped').length >= N + 1 ? ev : undefined;
    }, 'every stopped event', 30_000);
    const byId = new Map<string, string[]>();
    for (const e of events) {
      const c = (e.event.data as { container: string }).container;
      byId.set(c, [...(byId.get(c) ?? []), e.event.type]);
    }
    for (const id of ids) expect(byId.get(id), id).toEqual(LIFECYCLE);
    expect(new Set(events.map((e) => e.event.id)).size).toBe(events.length);
  }, 600_000);
});
