// Sections for the policy and vetting work: start with 5 bind mounts vs none, the policy check for
// 1,000 mounts, the data-path cost of a syscall-heavy loop, and vetted mount+umount latency.
// Each reports eci against runc measured in the same run.
import { chmodSync, copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { buildC } from '../helpers/cprog.ts';
import { checkBindMounts, type Resolved } from '../../actors/policy/mounts.ts';
import { realpathSync, statSync } from 'node:fs';
import type { BenchContext } from './context.ts';
import { interleaved, median, nowMs, fmtMs, fmtX } from './stats.ts';
import { timedRun, RUN } from './context.ts';

export interface MoreResult {
  binds?: { eci0: number; eci5: number; runc0: number; runc5: number; eciCost: number; runcCost: number; ratio5: number };
  policy?: { mounts: number; totalMs: number; perMountUs: number };
  dataPath?: { eciNs: number; runcNs: number; ratio: number; target: number };
  mountLatency?: { eciP50Us: number; eciP99Us: number; runcP50Us: number; runcP99Us: number; p50DeltaMs: number; target: string };
}

async function prog(c: BenchContext, name: string): Promise<string> {
  const dir = join(c.tmp, 'bin');
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  const dst = join(dir, name);
  copyFileSync(await buildC(name), dst);
  chmodSync(dst, 0o755);
  return dir;
}

async function runOut(c: BenchContext, runtime: string, args: string[]): Promise<string> {
  const r = await c.d.docker([...RUN, `--runtime=${runtime}`, ...args]);
  if (r.code !== 0) throw new Error(`docker run (${runtime}) ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

export async function benchMore(c: BenchContext): Promise<MoreResult> {
  const out: MoreResult = {};
  // Start time with 5 bind mounts against none.
  const vols = Array.from({ length: 5 }, (_, i) => join(c.tmp, `vol${i}`));
  for (const v of vols) mkdirSync(v, { recursive: true });
  const binds = vols.flatMap((v, i) => ['-v', `${v}:/v${i}`]);
  const n = Math.max(5, Math.min(c.config.n, 15));
  const samples: Record<string, number[]> = { eci0: [], eci5: [], runc0: [], runc5: [] };
  for (let i = 0; i < n + 2; i++) {
    for (const [k, rt, extra] of [['eci0', 'eci', []], ['eci5', 'eci', binds], ['runc0', 'runc-plain', []], ['runc5', 'runc-plain', binds]] as const) {
      const t = nowMs();
      const r = await c.d.docker([...RUN, ...extra, `--runtime=${rt}`, c.image, 'true']);
      if (r.code !== 0) throw new Error(`binds run ${k}: ${r.stderr.trim()}`);
      if (i >= 2) samples[k].push(nowMs() - t);
    }
  }
  const m = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)])) as Record<string, number>;
  out.binds = { eci0: m.eci0, eci5: m.eci5, runc0: m.runc0, runc5: m.runc5, eciCost: m.eci5 / m.eci0, runcCost: m.runc5 / m.runc0, ratio5: m.eci5 / m.runc5 };

  // Policy check for 1,000 bind mounts (real realpath/stat of 1,000 directories).
  const pdir = join(c.tmp, 'policy');
  const mounts = Array.from({ length: 1000 }, (_, i) => {
    const src = join(pdir, `d${i}`);
    mkdirSync(src, { recursive: true });
    return { destination: `/m${i}`, type: 'bind', source: src, options: ['rbind'] };
  });
  const resolve = (p: string): Resolved | undefined => {
    try { const path = realpathSync(p); const st = statSync(path, { bigint: true }); return { path, dev: st.dev, ino: st.ino, isDir: st.isDirectory() }; } catch { return undefined; }
  };
  const t = nowMs();
  checkBindMounts({ root: { path: 'r' }, linux: {}, mounts }, { id: 'x', bundle: '/b', resolve, policy: { restricted: ['/etc/docker', '/proc', '/sys'], shared: ['/tmp'], engineSockets: ['/run/docker.sock'], trustedImages: [] } });
  const totalMs = nowMs() - t;
  out.policy = { mounts: 1000, totalMs, perMountUs: (totalMs * 1000) / 1000 };

  // Data path: a syscall-heavy loop, eci vs runc, interleaved.
  const bin = await prog(c, 'syscall_loop');
  const dp: Record<string, number[]> = { eci: [], runc: [] };
  for (let i = 0; i < 6; i++) {
    for (const [k, rt] of [['eci', 'eci'], ['runc', 'runc-plain']] as const) {
      const o = await runOut(c, rt, ['-v', `${bin}:/b:ro`, c.image, '/b/syscall_loop', '200000']);
      if (i > 0) dp[k].push(Number(/ns_per_round ([\d.]+)/.exec(o)![1]));
    }
  }
  out.dataPath = { eciNs: median(dp.eci), runcNs: median(dp.runc), ratio: median(dp.eci) / median(dp.runc), target: 1.02 };

  // Vetted mount+umount latency.
  await prog(c, 'mount_lat');
  const lat: Record<string, { p50: number[]; p99: number[] }> = { eci: { p50: [], p99: [] }, runc: { p50: [], p99: [] } };
  for (let i = 0; i < 3; i++) {
    for (const [k, rt] of [['eci', 'eci'], ['runc', 'runc-plain']] as const) {
      const o = await runOut(c, rt, ['--cap-add', 'SYS_ADMIN', '-v', `${bin}:/b:ro`, c.image, '/b/mount_lat', '200']);
      lat[k].p50.push(Number(/p50_us ([\d.]+)/.exec(o)![1]));
      lat[k].p99.push(Number(/p99_us ([\d.]+)/.exec(o)![1]));
    }
  }
  out.mountLatency = {
    eciP50Us: median(lat.eci.p50), eciP99Us: median(lat.eci.p99), runcP50Us: median(lat.runc.p50), runcP99Us: median(lat.runc.p99),
    p50DeltaMs: (median(lat.eci.p50) - median(lat.runc.p50)) / 1000, target: 'p50 at most 1 ms above runc',
  };
  void interleaved; void timedRun;
  return out;
}

export function reportMore(r: MoreResult): string[] {
  const l: string[] = [];
  if (r.binds) {
    l.push('4. start with 5 bind mounts vs none (median ms)',
      `   eci   none ${fmtMs(r.binds.eci0)}  5 binds ${fmtMs(r.binds.eci5)}  cost ${fmtX(r.binds.eciCost)}`,
      `   runc  none ${fmtMs(r.binds.runc0)}  5 binds ${fmtMs(r.binds.runc5)}  cost ${fmtX(r.binds.runcCost)}`,
      `   eci/runc with 5 binds ${fmtX(r.binds.ratio5)}`);
  }
  if (r.policy) l.push(`5. bind-mount policy for ${r.policy.mounts} mounts: ${fmtMs(r.policy.totalMs)} (${r.policy.perMountUs.toFixed(1)} us per mount)`);
  if (r.dataPath) l.push(`6. data path (getppid+open/read/close+stat): eci ${r.dataPath.eciNs.toFixed(0)} ns/round, runc ${r.dataPath.runcNs.toFixed(0)} ns/round, ratio ${fmtX(r.dataPath.ratio)} (target <= ${r.dataPath.target}x)`);
  if (r.mountLatency) {
    const x = r.mountLatency;
    l.push(`7. mount+umount tmpfs: eci p50 ${x.eciP50Us.toFixed(0)} us p99 ${x.eciP99Us.toFixed(0)} us; runc p50 ${x.runcP50Us.toFixed(0)} us p99 ${x.runcP99Us.toFixed(0)} us; p50 +${x.p50DeltaMs.toFixed(2)} ms (target: ${x.target})`);
  }
  return l;
}
