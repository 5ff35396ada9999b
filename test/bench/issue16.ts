// Section "issue16": the rows of issue 16 (system containers), each against its baseline in the same
// run, interleaved. Rows (ECI_BENCH_ISSUE16_ROWS picks some; default all):
//   systemd  time from `docker run -d IMAGE /sbin/init` to systemd `running` (`systemctl
//            is-system-running --wait` in a `docker exec`, repeated while systemd does not answer yet),
//            eci with no flags vs runc with the flags runc needs (--cap-add SYS_ADMIN --cgroupns=private
//            --tmpfs /run --tmpfs /run/lock); the Debian 12 systemd image of the test suite.
//   dind     inner `docker run --rm --network none busybox true`, timed inside an eci container that runs
//            `dockerd` with no flags (Docker-in-Docker: overlay2 on eci's host-backed /var/lib/docker),
//            against the same `docker run` of the outer engine with --runtime=eci, timed on the host.
//            ECI_BENCH_ISSUE16_N runs each (default 5), 1 warm-up.
import { setTimeout as sleep } from 'node:timers/promises';
import { debianImageSkipReason, importDebian } from '../helpers/debian-image.ts';
import { timedRun, type BenchContext } from './context.ts';
import type { RowResult } from './issue17.ts';
import { interleaved, median, nowMs } from './stats.ts';

export const ROWS16 = ['systemd', 'dind'] as const;
type Row16 = (typeof ROWS16)[number];

export interface Issue16Result {
  n: number;
  rows: Partial<Record<Row16, RowResult>>;
  /** Rows that could not be measured: the others still are. */
  errors: string[];
}

/** What runc needs to boot systemd on this host (eci needs none of it). */
export const RUNC_SYSTEMD_FLAGS = ['--cap-add', 'SYS_ADMIN', '--cgroupns=private', '--tmpfs', '/run', '--tmpfs', '/run/lock'];
const BOOT_BOUND_MS = 120_000;

/** One boot: ms from `docker run -d` to `running` (or the state it settled in), the container removed after. */
async function bootOnce(c: BenchContext, runtime: string, flags: string[], img: string, states: string[]): Promise<number> {
  const name = `eci-bench-sd-${runtime}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const t0 = nowMs();
  try {
    const r = await c.d.docker(['run', '-d', '--name', name, '--network', 'none', `--runtime=${runtime}`, ...flags, img, '/sbin/init'], { timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`docker run --runtime=${runtime} ${img} /sbin/init exited ${r.code}: ${r.stderr.trim()}`);
    while (nowMs() - t0 < BOOT_BOUND_MS) {
      const s = await c.d.docker(['exec', name, 'systemctl', 'is-system-running', '--wait'], { timeoutMs: BOOT_BOUND_MS });
      const state = s.stdout.trim();
      if (['running', 'degraded', 'maintenance'].includes(state)) {
        states.push(state);
        return nowMs() - t0;
      }
      const up = await c.d.docker(['inspect', '-f', '{{.State.Running}}', name]);
      if (up.stdout.trim() !== 'true') throw new Error(`${runtime}: the container exited while booting (${state || s.stderr.trim()})`);
      await sleep(20); // systemd not answering yet (offline, or no bus)
    }
    throw new Error(`${runtime}: systemd did not finish booting within ${BOOT_BOUND_MS / 1000} s`);
  } finally {
    await c.d.docker(['rm', '-f', name]);
  }
}

async function systemdRow(c: BenchContext, n: number): Promise<RowResult> {
  const skip = debianImageSkipReason();
  if (skip) throw new Error(`the Debian image: ${skip}`);
  const img = await importDebian(c.d, 'systemd', 'eci-bench-systemd');
  const states: Record<string, string[]> = { eci: [], runc: [] };
  const s = await interleaved(
    { eci: () => bootOnce(c, 'eci', [], img, states.eci), runc: () => bootOnce(c, 'runc-plain', RUNC_SYSTEMD_FLAGS, img, states.runc) },
    { n, warmup: 1, shouldStop: c.stopping },
  );
  const other = (k: string) => states[k].filter((x) => x !== 'running');
  const note = [...other('eci').map((x) => `eci ${x}`), ...other('runc').map((x) => `runc ${x}`)];
  return {
    what: 'docker run -d IMAGE /sbin/init until systemd is running (runc: + ' + RUNC_SYSTEMD_FLAGS.join(' ') + ')', unit: 'ms',
    eci: median(s.eci), base: median(s.runc), baseName: 'runc', ratio: median(s.eci) / median(s.runc),
    note: note.length ? `not running: ${note.join(', ')}` : undefined,
  };
}

/** The inner engine's `docker run --rm`, timed in the outer container by its own clock (no exec cost). */
async function innerRunOnce(c: BenchContext, outer: string, img: string): Promise<number> {
  const r = await c.d.docker(['exec', outer, 'sh', '-c',
    `s=$(date +%s%N); docker run --rm --network none ${img} true || exit 1; e=$(date +%s%N); echo $(( (e - s) / 1000 ))`], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`inner docker run exited ${r.code}: ${r.stderr.trim()}`);
  return Number(r.stdout.trim()) / 1000;
}

async function dindRow(c: BenchContext, n: number): Promise<RowResult> {
  const skip = debianImageSkipReason();
  if (skip) throw new Error(`the Debian image: ${skip}`);
  const img = await importDebian(c.d, 'docker', 'eci-bench-docker');
  const tar = `${c.tmp}/inner-image.tar`;
  const saved = await c.d.docker(['save', c.image, '-o', tar]);
  if (saved.code !== 0) throw new Error(`docker save ${c.image}: ${saved.stderr.trim()}`);
  const name = `eci-bench-dind-${process.pid}`;
  const r = await c.d.docker(['run', '-d', '--name', name, '--runtime=eci', '-v', `${tar}:/inner-image.tar:ro`, img, 'dockerd'], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`docker run --runtime=eci ${img} dockerd exited ${r.code}: ${r.stderr.trim()}`);
  try {
    const t0 = nowMs();
    while ((await c.d.docker(['exec', name, 'docker', 'version'])).code !== 0) {
      if (nowMs() - t0 > 60_000) throw new Error('the inner dockerd did not answer within 60 s');
      await sleep(100);
    }
    const load = await c.d.docker(['exec', name, 'docker', 'load', '-i', '/inner-image.tar'], { timeoutMs: 60_000 });
    if (load.code !== 0) throw new Error(`inner docker load: ${load.stderr.trim()}`);
    const s = await interleaved(
      { inner: () => innerRunOnce(c, name, c.image), outer: () => timedRun(c, 'eci', c.image) },
      { n, warmup: 1, shouldStop: c.stopping },
    );
    return {
      what: 'docker run --rm true inside an eci container running dockerd (no flags), against the outer engine\'s (eci)', unit: 'ms',
      eci: median(s.inner), base: median(s.outer), baseName: 'outer', ratio: median(s.inner) / median(s.outer),
    };
  } finally {
    await c.d.docker(['rm', '-f', name]);
  }
}

export async function benchIssue16(c: BenchContext): Promise<Issue16Result> {
  const v = process.env.ECI_BENCH_ISSUE16_ROWS?.trim();
  const rows = (v ? v.split(',').map((x) => x.trim()) : [...ROWS16]) as Row16[];
  for (const r of rows) if (!ROWS16.includes(r)) throw new Error(`ECI_BENCH_ISSUE16_ROWS: unknown ${r} (known: ${ROWS16.join(',')})`);
  const n = Number(process.env.ECI_BENCH_ISSUE16_N ?? 5);
  const res: Issue16Result = { n, rows: {}, errors: [] };
  for (const row of rows) {
    if (c.stopping()) break;
    try {
      if (row === 'systemd') res.rows.systemd = await systemdRow(c, n);
      if (row === 'dind') res.rows.dind = await dindRow(c, n);
      const x = res.rows[row]!;
      c.say(`[issue16] ${row}: eci ${x.eci.toFixed(0)} ms, ${x.baseName} ${x.base.toFixed(0)} ms, ${x.ratio.toFixed(2)}x${x.note ? ` (${x.note})` : ''}`);
    } catch (e) {
      res.errors.push(`${row}: ${(e as Error).message.split('\n')[0]}`);
      c.say(`[issue16] ${row} FAILED: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  return res;
}

export function reportIssue16(r: Issue16Result): string[] {
  const out = [`Issue 16: system containers, each row against its baseline in the same run (N=${r.n})`];
  for (const x of Object.values(r.rows)) {
    out.push(`   ${x.what}:`, `      eci ${x.eci.toFixed(0)} ${x.unit} / ${x.baseName} ${x.base.toFixed(0)} ${x.unit} = ${x.ratio.toFixed(2)}x${x.note ? ` (${x.note})` : ''}`);
  }
  for (const e of r.errors) out.push(`   NOT MEASURED ${e}`);
  return out;
}
