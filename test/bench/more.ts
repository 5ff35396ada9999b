// Sections for the policy and vetting work: start with 5 bind mounts vs none, the policy check for
// 1,000 mounts, the data-path cost of a syscall-heavy loop, and vetted mount+umount latency.
// Each reports eci against runc measured in the same run. ECI_BENCH_ONLY=datapath / mountlat run one
// of the last two alone.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { installC } from '../helpers/cprog.ts';
import { checkBindMounts, type Resolved } from '../../actors/policy/mounts.ts';
import { realpathSync, statSync } from 'node:fs';
import type { BenchContext } from './context.ts';
import { median, nowMs, fmtMs, fmtX } from './stats.ts';
import { RUN } from './context.ts';
import { addNotifyRules } from '../../actors/runc/seccomp.ts';
import type { OciSpec } from '../../actors/runc/spec.ts';
import type { VetterDecisionData } from '../../bus/schemas/v1.ts';
import { replay } from '../helpers/events.ts';

export interface MoreResult {
  binds?: { eci0: number; eci5: number; runc0: number; runc5: number; eciCost: number; runcCost: number; ratio5: number };
  policy?: { mounts: number; totalMs: number; perMountUs: number };
  dataPath?: {
    eciNs: number; runcNs: number; ratio: number; target: number; rounds: number;
    /** Medians of per-round ratios: eci/runc, runc with eci's filter/runc, eci/runc looping on /dev. */
    pairedRatio: number; filterRatio: number; devRatio: number; spread: { min: number; max: number };
    /** runc with eci's filter but open/openat/creat unconditionally allowed (no setuid-creation rules) / runc. */
    filterNoCreateRatio: number;
  };
  mountLatency?: {
    eciP50Us: number; eciP99Us: number; runcP50Us: number; runcP99Us: number; p50DeltaMs: number; target: string;
    rounds: number; eciP50Spread: { min: number; max: number };
    /** Medians over the audit events of the vetted calls: the manager's time per step. */
    spansUs: { calls: number; total: number; decide: number; perform: number; respond: number; inspect?: number; queue?: number; byPerformer: number };
  };
}

export function prog(c: BenchContext, name: string): Promise<string> {
  return installC(join(c.tmp, 'bin'), name);
}

export async function runOut(c: BenchContext, runtime: string, args: string[]): Promise<string> {
  const r = await c.d.docker([...RUN, `--runtime=${runtime}`, ...args]);
  if (r.code !== 0) throw new Error(`docker run (${runtime}) ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

export type MorePart = 'binds' | 'policy' | 'datapath' | 'mountlat';

export async function benchMore(c: BenchContext, parts: MorePart[] = ['binds', 'policy', 'datapath', 'mountlat']): Promise<MoreResult> {
  const out: MoreResult = {};
  if (parts.includes('binds')) out.binds = await bindsCost(c);
  if (parts.includes('policy')) out.policy = policyCost(c);
  if (parts.includes('datapath')) out.dataPath = await dataPath(c);
  if (parts.includes('mountlat')) out.mountLatency = await mountLatency(c);
  return out;
}

/** Start time with 5 bind mounts against none. */
async function bindsCost(c: BenchContext): Promise<NonNullable<MoreResult['binds']>> {
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
  return { eci0: m.eci0, eci5: m.eci5, runc0: m.runc0, runc5: m.runc5, eciCost: m.eci5 / m.eci0, runcCost: m.runc5 / m.runc0, ratio5: m.eci5 / m.runc5 };
}

/** Policy check for 1,000 bind mounts (real realpath/stat of 1,000 directories). */
function policyCost(c: BenchContext): NonNullable<MoreResult['policy']> {
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
  return { mounts: 1000, totalMs, perMountUs: (totalMs * 1000) / 1000 };
}

/**
 * Data path: a syscall-heavy loop (getppid, open/read/close, stat), interleaved, median of per-round
 * ratios. Variants that separate the suspects: `runc+filter` is plain runc with eci's seccomp filter
 * (Docker's profile as the engine passed it, through addNotifyRules, with NOTIFY turned into TRACE, so the
 * BPF has the same shape without a listener); the `/dev` pair loops on /dev/null and /dev (a tmpfs and
 * a device node in both runtimes: no overlay, no idmapped layers).
 */
async function dataPath(c: BenchContext): Promise<NonNullable<MoreResult['dataPath']>> {
  const bin = await prog(c, 'syscall_loop');
  const engine = await engineSeccomp(c);
  const profile = join(c.tmp, 'eci-filter.json');
  writeFileSync(profile, JSON.stringify(eciFilterProfile(engine)));
  const noArgs = join(c.tmp, 'eci-filter-no-create-rules.json');
  writeFileSync(noArgs, JSON.stringify(eciFilterProfile(engine, ['open', 'openat', 'creat'])));
  const rounds = Math.max(4, Math.min(c.config.n, 10));
  const variants: [string, string, string[], string[]][] = [
    ['eci', 'eci', [], []],
    ['runc', 'runc-plain', [], []],
    ['runcFilter', 'runc-plain', ['--security-opt', `seccomp=${profile}`], []],
    ['runcFilterNoCreate', 'runc-plain', ['--security-opt', `seccomp=${noArgs}`], []],
    ['eciDev', 'eci', [], ['/dev/null', '/dev']],
    ['runcDev', 'runc-plain', [], ['/dev/null', '/dev']],
  ];
  const ns: Record<string, number[]> = Object.fromEntries(variants.map(([k]) => [k, []]));
  for (let i = 0; i < rounds + 1 && !c.stopping(); i++) {
    for (const [k, rt, extra, paths] of variants) {
      const o = await runOut(c, rt, [...extra, '-v', `${bin}:/b:ro`, c.image, '/b/syscall_loop', '200000', ...paths]);
      if (i > 0) ns[k].push(Number(/ns_per_round ([\d.]+)/.exec(o)![1]));
    }
  }
  const paired = (a: string, b: string) => median(ns[a].map((x, i) => x / ns[b][i]));
  return {
    eciNs: median(ns.eci), runcNs: median(ns.runc), ratio: median(ns.eci) / median(ns.runc), target: 1.02, rounds,
    pairedRatio: paired('eci', 'runc'), filterRatio: paired('runcFilter', 'runc'), filterNoCreateRatio: paired('runcFilterNoCreate', 'runc'), devRatio: paired('eciDev', 'runcDev'),
    spread: { min: Math.min(...ns.eci.map((x, i) => x / ns.runc[i])), max: Math.max(...ns.eci.map((x, i) => x / ns.runc[i])) },
  };
}

/** The seccomp section of the spec Docker gives runc for a plain container (found in its bundle). */
async function engineSeccomp(c: BenchContext): Promise<Record<string, unknown>> {
  const r = await c.d.docker(['run', '-d', '--network', 'none', '--runtime=runc-plain', c.image, 'sleep', '60']);
  if (r.code !== 0) throw new Error(`docker run -d: ${r.stderr.trim()}`);
  const id = r.stdout.trim();
  try {
    const found = execFileSync('find', [c.d.dir, '-path', `*/${id}/config.json`], { encoding: 'utf8' }).split('\n').filter(Boolean);
    if (!found.length) throw new Error(`no config.json for ${id} under ${c.d.dir}`);
    return (JSON.parse(readFileSync(found[0], 'utf8')) as { linux: { seccomp: Record<string, unknown> } }).linux.seccomp;
  } finally {
    await c.d.docker(['rm', '-f', id]);
  }
}

/**
 * eci's rules on top of the engine's profile, as a Docker profile; NOTIFY needs a listener, TRACE has the
 * same BPF shape. `plain`: names whose argument rules are replaced by one unconditional ALLOW (to measure them).
 */
function eciFilterProfile(seccomp: Record<string, unknown>, plain: string[] = []): Record<string, unknown> {
  const spec = addNotifyRules({ linux: { seccomp } } as unknown as OciSpec, '/nonexistent', 'bench');
  const sc = { ...(spec.linux!.seccomp as Record<string, unknown>) };
  delete sc.listenerPath;
  delete sc.listenerMetadata;
  sc.syscalls = (sc.syscalls as { names: string[]; action: string }[])
    .map((r) => (r.action === 'SCMP_ACT_NOTIFY' ? { ...r, action: 'SCMP_ACT_TRACE' } : r))
    .filter((r) => !r.names.every((n) => plain.includes(n)));
  if (plain.length) (sc.syscalls as unknown[]).push({ names: plain, action: 'SCMP_ACT_ALLOW' });
  return sc;
}

/** Vetted mount+umount latency (200 rounds in one container per run), eci against runc, interleaved. */
async function mountLatency(c: BenchContext): Promise<NonNullable<MoreResult['mountLatency']>> {
  const bin = await prog(c, 'mount_lat');
  const lat: Record<string, { p50: number[]; p99: number[] }> = { eci: { p50: [], p99: [] }, runc: { p50: [], p99: [] } };
  const rounds = Math.max(3, Math.min(c.config.n, 7));
  for (let i = 0; i < rounds && !c.stopping(); i++) {
    for (const [k, rt] of [['eci', 'eci'], ['runc', 'runc-plain']] as const) {
      const o = await runOut(c, rt, ['--cap-add', 'SYS_ADMIN', '-v', `${bin}:/b:ro`, c.image, '/b/mount_lat', '200']);
      lat[k].p50.push(Number(/p50_us ([\d.]+)/.exec(o)![1]));
      lat[k].p99.push(Number(/p99_us ([\d.]+)/.exec(o)![1]));
    }
  }
  // The manager's own account of each vetted call (audit events): median time per step.
  const ev = (await replay(c.m.natsUrl, 'eci.v1.evt.vetter.>')).map((e) => e.event.data as VetterDecisionData).filter((d) => d.spansUs);
  const span = (k: 'decide' | 'perform' | 'respond') => median(ev.map((d) => d.spansUs![k]));
  const nativeSpan = (k: 'inspect' | 'queue') => { const v = ev.flatMap((d) => (d.spansUs![k] === undefined ? [] : [d.spansUs![k]!])); return v.length ? median(v) : undefined; };
  return {
    spansUs: { calls: ev.length, total: median(ev.map((d) => d.latencyUs)), decide: span('decide'), perform: span('perform'), respond: span('respond'), inspect: nativeSpan('inspect'), queue: nativeSpan('queue'), byPerformer: ev.filter((d) => d.answeredBy === 'performer').length },
    eciP50Us: median(lat.eci.p50), eciP99Us: median(lat.eci.p99), runcP50Us: median(lat.runc.p50), runcP99Us: median(lat.runc.p99),
    p50DeltaMs: (median(lat.eci.p50) - median(lat.runc.p50)) / 1000, target: 'p50 at most 1 ms above runc',
    rounds, eciP50Spread: { min: Math.min(...lat.eci.p50), max: Math.max(...lat.eci.p50) },
  };
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
  if (r.dataPath) {
    const x = r.dataPath;
    l.push(`6. data path (getppid+open/read/close+stat): eci ${x.eciNs.toFixed(0)} ns/round, runc ${x.runcNs.toFixed(0)} ns/round, ratio ${fmtX(x.ratio)} (target <= ${x.target}x)`,
      `   ${x.rounds} interleaved rounds, median of per-round ratios ${x.pairedRatio.toFixed(3)} (spread ${x.spread.min.toFixed(3)}-${x.spread.max.toFixed(3)});` +
      ` runc with eci's filter / runc ${x.filterRatio.toFixed(3)} (without the open/openat/creat rules ${x.filterNoCreateRatio.toFixed(3)});` +
      ` eci/runc on /dev (no overlay, no idmap) ${x.devRatio.toFixed(3)}`);
  }
  if (r.mountLatency) {
    const x = r.mountLatency;
    l.push(`7. mount+umount tmpfs: eci p50 ${x.eciP50Us.toFixed(0)} us p99 ${x.eciP99Us.toFixed(0)} us; runc p50 ${x.runcP50Us.toFixed(0)} us p99 ${x.runcP99Us.toFixed(0)} us; p50 +${x.p50DeltaMs.toFixed(2)} ms (target: ${x.target});` +
      ` ${x.rounds} runs, eci p50 spread ${x.eciP50Spread.min.toFixed(0)}-${x.eciP50Spread.max.toFixed(0)} us`,
      `   in the manager, per call (median of ${x.spansUs.calls}; ${x.spansUs.byPerformer} answered by the performer): ${x.spansUs.total} us = verdict ${x.spansUs.decide} + perform ${x.spansUs.perform} + respond ${x.spansUs.respond}` +
        (x.spansUs.inspect !== undefined ? `; before it: arguments read ${x.spansUs.inspect} us in the native watcher, then ${x.spansUs.queue} us into the feed` : ''));
  }
  return l;
}
