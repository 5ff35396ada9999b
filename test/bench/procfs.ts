// Section "procfs": read throughput of the emulated /proc/uptime and /proc/meminfo (a static C
// open/read-to-EOF/close loop, test/fixtures/c/proc_read_loop.c) inside
//   eci    an eci container (its FUSE server, render cache on),
//   lxcfs  the same image under plain runc with LXCFS's files bind-mounted over /proc (Debian lxcfs,
//          started here on a private mountpoint and pidfile, stopped by its pid afterwards),
//   plain  plain runc, the kernel's procfs.
// Every container gets --memory 256m so both emulations render a limited meminfo. Rounds are
// interleaved and the median taken; the issue's target is eci/lxcfs >= 1.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { installC } from '../helpers/cprog.ts';
import type { BenchContext } from './context.ts';
import { RUN } from './context.ts';
import { fmtX, median } from './stats.ts';

const FILES = ['uptime', 'meminfo'] as const;
const VARIANTS = ['eci', 'lxcfs', 'plain'] as const;
type Variant = (typeof VARIANTS)[number];

export interface ProcfsResult {
  /** Reads per second, median over rounds, by file then variant. */
  readsPerS: Record<string, Record<Variant, number>>;
  /** eci / lxcfs by file (>= 1 meets the target). */
  eciOverLxcfs: Record<string, number>;
  rounds: number;
  reads: number;
  lxcfs: string;
}

const LXCFS = '/usr/bin/lxcfs';

async function startLxcfs(dir: string): Promise<{ proc: ChildProcess; mnt: string }> {
  const mnt = join(dir, 'lxcfs');
  mkdirSync(mnt, { recursive: true });
  const proc = spawn(LXCFS, ['-f', '-p', join(dir, 'lxcfs.pid'), mnt], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  for (let i = 0; i < 100; i++) {
    if (existsSync(join(mnt, 'proc', 'uptime'))) return { proc, mnt };
    if (proc.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await stopLxcfs(proc);
  throw new Error(`lxcfs did not come up on ${mnt}: ${err.trim() || `exit ${proc.exitCode}`}`);
}

/** SIGTERM to our lxcfs (by its pid): it unmounts its mountpoint on the way out. */
async function stopLxcfs(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
  await gone;
  clearTimeout(t);
}

export async function benchProcfs(c: BenchContext): Promise<ProcfsResult> {
  if (!existsSync(LXCFS)) throw new Error(`${LXCFS} is not installed (apt-get install lxcfs)`);
  const bin = await installC(join(c.tmp, 'procfs-bin'), 'proc_read_loop');
  const reads = 20_000;
  const rounds = 3;
  const lx = await startLxcfs(c.tmp);
  try {
    const args = (v: Variant, file: string): string[] => {
      const common = ['--memory', '256m', '-v', `${bin}:/b:ro`];
      if (v === 'eci') return [...RUN, '--runtime=eci', ...common, c.image, '/b/proc_read_loop', `/proc/${file}`, String(reads)];
      const binds = v === 'lxcfs' ? FILES.flatMap((f) => ['-v', `${join(lx.mnt, 'proc', f)}:/proc/${f}:ro`]) : [];
      return [...RUN, '--runtime=runc-plain', ...common, ...binds, c.image, '/b/proc_read_loop', `/proc/${file}`, String(reads)];
    };
    // Check the emulations are really in place before timing them.
    const probe = async (v: Variant) => {
      const r = await c.d.docker([...RUN, `--runtime=${v === 'eci' ? 'eci' : 'runc-plain'}`, '--memory', '256m', ...(v === 'lxcfs' ? FILES.flatMap((f) => ['-v', `${join(lx.mnt, 'proc', f)}:/proc/${f}:ro`]) : []), c.image, 'grep', 'MemTotal', '/proc/meminfo']);
      if (r.code !== 0) throw new Error(`procfs probe (${v}): ${r.stderr.trim()}`);
      return r.stdout.trim();
    };
    for (const v of ['eci', 'lxcfs'] as const) {
      const total = await probe(v);
      if (!/^MemTotal:\s+262144 kB$/.test(total)) throw new Error(`procfs probe (${v}): meminfo not emulated: ${total}`);
    }
    const samples: Record<string, Record<Variant, number[]>> = {};
    for (const f of FILES) samples[f] = { eci: [], lxcfs: [], plain: [] };
    for (let i = 0; i < rounds && !c.stopping(); i++) {
      for (const f of FILES) {
        for (const v of VARIANTS) {
          const r = await c.d.docker(args(v, f), { timeoutMs: 120_000 });
          if (r.code !== 0) throw new Error(`procfs ${v} ${f}: ${r.stderr.trim()}`);
          samples[f][v].push(Number(r.stdout.trim()));
        }
      }
    }
    const readsPerS: ProcfsResult['readsPerS'] = {};
    const eciOverLxcfs: Record<string, number> = {};
    for (const f of FILES) {
      readsPerS[f] = { eci: median(samples[f].eci), lxcfs: median(samples[f].lxcfs), plain: median(samples[f].plain) };
      eciOverLxcfs[f] = readsPerS[f].eci / readsPerS[f].lxcfs;
      c.say(`bench: procfs ${f}: ${VARIANTS.map((v) => `${v} ${samples[f][v].join('/')}`).join(', ')} reads/s`);
    }
    const version = await new Promise<string>((r) => {
      const p = spawn(LXCFS, ['--version']); // prints "5.0.3", quoted, on stderr
      let o = '';
      p.stdout.on('data', (b: Buffer) => (o += b.toString()));
      p.stderr.on('data', (b: Buffer) => (o += b.toString()));
      p.on('close', () => r(o.replace(/"/g, '').trim()));
    });
    return { readsPerS, eciOverLxcfs, rounds, reads, lxcfs: version };
  } finally {
    await stopLxcfs(lx.proc);
    // lxcfs unmounts on SIGTERM; after a SIGKILL its dead mount would block removing the scratch dir.
    if (readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === lx.mnt)) spawnSync('umount', ['-l', lx.mnt]);
  }
}

export function reportProcfs(r: ProcfsResult): string[] {
  const l = [`8. /proc read throughput, open/read/close x${r.reads}, median of ${r.rounds} (reads/s; lxcfs ${r.lxcfs})`];
  for (const [f, v] of Object.entries(r.readsPerS))
    l.push(`   /proc/${f.padEnd(8)} eci ${v.eci.toFixed(0)}  lxcfs ${v.lxcfs.toFixed(0)}  plain ${v.plain.toFixed(0)}  eci/lxcfs ${fmtX(r.eciOverLxcfs[f])} (target >= 1)`);
  return l;
}
