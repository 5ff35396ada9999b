// Section 2: start time must not depend on image size under eci (it idmaps the layers, it never
// chowns). A large image (busybox + ECI_BENCH_BIG_MB MB in 20 KiB files) is `docker import`ed, then
// tiny and large images are started interleaved under eci and under runc.
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeBusyboxRootfs } from '../helpers/busybox.ts';
import { timedRun, type BenchContext } from './context.ts';
import { fmtMs, fmtX, interleaved, nowMs, ratios, summarize, table, type Summary } from './stats.ts';

const run = promisify(execFile);
const FILE_SIZE = 20 * 1024;
const PER_DIR = 200;
const BIG_IMAGE = 'eci-bench-big';

export interface ImageResult {
  bigMB: number;
  files: number;
  bytes: number;
  prepare: { generateMs: number; tarMs: number; importMs: number };
  n: number;
  warmup: number;
  eci: { tiny: Summary; big: Summary; ratio: number; pairedRatio: number };
  runc: { tiny: Summary; big: Summary; ratio: number; pairedRatio: number };
  /** Owner of a data file of the large image as container root sees it under eci (want 0). */
  bigFileUidInEci: string;
  samples: Record<string, number[]>;
}

/** Writes `count` files of FILE_SIZE bytes of random-looking data (slices of one random pool). */
async function writeData(root: string, count: number): Promise<void> {
  const pool = randomBytes(8 * 1024 * 1024);
  const span = pool.length - FILE_SIZE;
  const dirs = Math.ceil(count / PER_DIR);
  for (let d = 0; d < dirs; d++) await mkdir(join(root, 'data', `d${String(d).padStart(3, '0')}`), { recursive: true });
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) {
      const off = (i * 104_729 * 8) % span; // a different window of the pool for every file
      const dir = join(root, 'data', `d${String(Math.floor(i / PER_DIR)).padStart(3, '0')}`);
      await writeFile(join(dir, `f${String(i).padStart(6, '0')}`), pool.subarray(off, off + FILE_SIZE));
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
}

export async function benchImage(c: BenchContext): Promise<ImageResult> {
  const { bigMB, imageN: n, imageWarmup: warmup } = c.config;
  const files = Math.max(1, Math.round((bigMB * 1e6) / FILE_SIZE));
  const work = await mkdtemp(join(c.tmp, 'big-'));
  let imported = false;
  try {
    c.say(`[image] generating ${files} files of ${FILE_SIZE / 1024} KiB (${((files * FILE_SIZE) / 1e6).toFixed(0)} MB) + busybox rootfs`);
    const rootfs = join(work, 'rootfs');
    const tar = join(work, 'big.tar');
    let t = nowMs();
    await makeBusyboxRootfs(rootfs);
    await writeData(rootfs, files);
    const generateMs = nowMs() - t;
    t = nowMs();
    await run('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', tar, '.'], { maxBuffer: 1 << 20 });
    const tarMs = nowMs() - t;
    const bytes = (await stat(tar)).size;
    await rm(rootfs, { recursive: true, force: true });
    c.say(`[image] docker import of a ${(bytes / 1e6).toFixed(0)} MB tarball`);
    t = nowMs();
    const imp = await c.d.docker(['import', '--change', 'CMD ["sh"]', tar, BIG_IMAGE], { timeoutMs: 600_000 });
    if (imp.code !== 0) throw new Error(`docker import ${BIG_IMAGE} failed (${imp.code}): ${imp.stderr.trim()}`);
    imported = true;
    const importMs = nowMs() - t;
    await rm(tar, { force: true });

    const probe = await c.d.docker(['run', '--rm', '--network', 'none', '--runtime=eci', BIG_IMAGE, 'stat', '-c', '%u:%g', '/data/d000/f000000']);
    const bigFileUidInEci = probe.code === 0 ? probe.stdout.trim() : `error: ${probe.stderr.trim()}`;

    c.say(`[image] ${warmup} warmup + ${n} measured rounds of eci tiny, eci big, runc tiny, runc big`);
    const s = await interleaved(
      {
        eciTiny: () => timedRun(c, 'eci', c.image),
        eciBig: () => timedRun(c, 'eci', BIG_IMAGE),
        runcTiny: () => timedRun(c, 'runc-plain', c.image),
        runcBig: () => timedRun(c, 'runc-plain', BIG_IMAGE),
      },
      { n, warmup, shouldStop: c.stopping },
    );
    const pair = (big: number[], tiny: number[]) => {
      const r = ratios(big, tiny);
      return { tiny: summarize(tiny), big: summarize(big), ratio: r.ofMedians, pairedRatio: r.pairedMedian };
    };
    return {
      bigMB, files, bytes, prepare: { generateMs, tarMs, importMs }, n, warmup,
      eci: pair(s.eciBig, s.eciTiny), runc: pair(s.runcBig, s.runcTiny), bigFileUidInEci, samples: s,
    };
  } finally {
    if (imported) {
      const r = await c.d.docker(['rmi', '-f', BIG_IMAGE]).catch((e: Error) => ({ code: -1, stderr: e.message }));
      if (r.code !== 0) c.say(`[image] warning: docker rmi ${BIG_IMAGE}: ${r.stderr.trim()}`);
    }
    await rm(work, { recursive: true, force: true });
  }
}

export function reportImage(r: ImageResult): string[] {
  return [
    `2. Image size independence: tiny busybox vs ${(r.bytes / 1e6).toFixed(0)} MB image (${r.files} files), median of ${r.n} (${r.warmup} warmups), interleaved`,
    `   (prepare: generate ${(r.prepare.generateMs / 1000).toFixed(1)} s, tar ${(r.prepare.tarMs / 1000).toFixed(1)} s, docker import ${(r.prepare.importMs / 1000).toFixed(1)} s)`,
    ...table([
      ['runtime', 'tiny median', 'big median', 'tiny p90', 'big p90', 'big/tiny', 'paired'],
      ...(['eci', 'runc'] as const).map((k) => [k === 'runc' ? 'runc-plain' : k, fmtMs(r[k].tiny.median), fmtMs(r[k].big.median), fmtMs(r[k].tiny.p90), fmtMs(r[k].big.p90), fmtX(r[k].ratio), fmtX(r[k].pairedRatio)]),
    ]).split('\n').map((l) => '   ' + l),
    `   big-image file owner seen by eci container root: ${r.bigFileUidInEci} (want 0:0); eci big/tiny minus runc big/tiny: ${(r.eci.ratio - r.runc.ratio >= 0 ? '+' : '')}${(r.eci.ratio - r.runc.ratio).toFixed(3)}`,
  ];
}
