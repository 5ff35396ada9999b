// What every benchmark section gets: the private dockerd, the eci manager, the tiny image, a temp
// dir, the configuration from the environment, and a docker-run helper that times one run.
import type { Dockerd } from '../helpers/dockerd.ts';
import type { TestManager } from '../helpers/manager.ts';
import { nowMs } from './stats.ts';

export interface BenchConfig {
  only: Set<string>;
  /** Section 1: measured runs per runtime, warmup runs per runtime. */
  n: number;
  warmup: number;
  /** Section 1b: runs per runtime with the timestamping wrappers (0: skip). */
  callsN: number;
  /** Section 2: size of the large image in MB (10^6 bytes of file data), runs per variant. */
  bigMB: number;
  imageN: number;
  imageWarmup: number;
  /** Section 3: containers to keep running, parallel starts per batch. */
  rssCount: number;
  rssBatch: number;
}

function int(name: string, dflt: number, min = 0): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name}=${v}: expected an integer >= ${min}`);
  return n;
}

/** more = binds, policy, datapath, mountlat; the last two can also be picked alone. */
export const SECTIONS = ['start', 'image', 'rss', 'more', 'procfs', 'issue17', 'issue16', 'load', 'datapath', 'mountlat'] as const;
/** Not in the default run: parts of more, and load (issue17 runs its throughput rows, quiet and busy). */
const NOT_DEFAULT: readonly string[] = ['datapath', 'mountlat', 'load'];

export function configFromEnv(): BenchConfig {
  const onlyRaw = process.env.ECI_BENCH_ONLY?.trim();
  const only = new Set<string>(onlyRaw ? onlyRaw.split(',').map((s) => s.trim()).filter(Boolean) : SECTIONS.filter((x) => !NOT_DEFAULT.includes(x)));
  for (const s of only) if (!(SECTIONS as readonly string[]).includes(s)) throw new Error(`ECI_BENCH_ONLY: unknown section ${s} (known: ${SECTIONS.join(',')})`);
  return {
    only,
    n: int('ECI_BENCH_N', 30, 1),
    warmup: int('ECI_BENCH_WARMUP', 3),
    callsN: int('ECI_BENCH_CALLS_N', 10),
    bigMB: int('ECI_BENCH_BIG_MB', 400, 1),
    imageN: int('ECI_BENCH_IMAGE_N', 10, 1),
    imageWarmup: int('ECI_BENCH_IMAGE_WARMUP', 2),
    rssCount: int('ECI_BENCH_RSS_COUNT', 50, 1),
    rssBatch: int('ECI_BENCH_RSS_BATCH', 5, 1),
  };
}

export interface BenchContext {
  d: Dockerd;
  m: TestManager;
  /** The tiny busybox image. */
  image: string;
  /** Scratch dir of this run (removed at the end). */
  tmp: string;
  config: BenchConfig;
  /** Paths of the timestamp logs of the wrapped runtimes (section 1b), by runtime name. */
  callLogs: Record<string, string>;
  /** Set on SIGINT/SIGTERM: loops stop and cleanup runs. */
  stopping(): boolean;
  say(line: string): void;
}

export const RUN = ['run', '--rm', '--network', 'none'];

/** `docker run --rm --network none --runtime=<rt> <image> <cmd...>`; returns the wall time in ms. */
export async function timedRun(c: BenchContext, runtime: string, image: string, cmd: string[] = ['true']): Promise<number> {
  const t0 = nowMs();
  const r = await c.d.docker([...RUN, `--runtime=${runtime}`, image, ...cmd], { timeoutMs: 60_000 });
  const ms = nowMs() - t0;
  if (r.code !== 0) throw new Error(`docker run --runtime=${runtime} ${image} ${cmd.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return ms;
}
