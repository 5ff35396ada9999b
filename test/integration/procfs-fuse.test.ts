// The procfs FUSE server (native mountProcFs + actors/procfs ProcFs) with a real runc container in its
// own user and pid namespaces: the container sees its own uptime, no swap, its cgroup memory limit, its
// CPUs, tasks and I/O through bind mounts over /proc/{uptime,swaps,meminfo,cpuinfo,stat,loadavg,diskstats};
// everyone else sees the host's files. Also: the native render cache never mixes containers up, nor
// does the kernel's page cache (splice/sendfile readers) now that each container has a view of its own.
import { execFile } from 'node:child_process';
import { runCmd } from '../helpers/run.ts';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROCFS_FILES, ProcFs } from '../../actors/procfs/server.ts';
import { makeBusyboxRootfs } from '../helpers/busybox.ts';
import { fuseRuncSkipReason, isMounted } from '../helpers/skip.ts';
import { buildC, gccMissing } from '../helpers/cprog.ts';

const run = promisify(execFile);
const skip = fuseRuncSkipReason();
const mounted = isMounted;


const runc = (args: string[]) => runCmd('runc', args, undefined, undefined, 120_000);

describe.skipIf(skip !== '')(`procfs FUSE with a runc container${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let dir: string;
  let mnt: string;
  let fs: ProcFs;
  let mntNoCache: string;
  let fsNoCache: ProcFs; // the same server with the render cache off: every read renders in JS

  beforeAll(async () => {
    dir = mkdtempSync('/tmp/eci-procfs-');
    chmodSync(dir, 0o755); // container root (host uid 100000) walks to the bind sources
    mnt = join(dir, 'mnt');
    mkdirSync(mnt, { mode: 0o755 });
    fs = new ProcFs();
    await fs.start(mnt);
    mntNoCache = join(dir, 'mnt-nocache');
    mkdirSync(mntNoCache, { mode: 0o755 });
    fsNoCache = new ProcFs({ cacheMs: {} });
    await fsNoCache.start(mntNoCache);
  });
  afterAll(async () => {
    await fs?.stop();
    await fsNoCache?.stop();
    if (dir) {
      if (mounted(mnt)) await run('umount', ['-l', mnt]).catch(() => {});
      if (mounted(mntNoCache)) await run('umount', ['-l', mntNoCache]).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** Runs `script` as a container's init (runc run) in a fresh busybox bundle and registers the init. */
  interface RunOptions {
    /** Serve the binds from the cache-less server. */
    noCache?: boolean;
    memoryBytes?: number;
    cpu?: { quota?: number; period?: number; cpus?: string };
  }
  async function runContainer(name: string, script: string, extraBin?: string, o: RunOptions = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const server = o.noCache ? fsNoCache : fs;
    const id = `eci-procfs-${name}-${process.pid}`;
    const from = server.viewDir(id)!; // the container's own view, as the manager binds it
    const b = join(dir, name);
    await makeBusyboxRootfs(join(b, 'rootfs'));
    if (extraBin) await run('cp', [extraBin, join(b, 'rootfs/bin/')]);
    chmodSync(b, 0o755);
    const bind = (f: string) => ({ destination: `/proc/${f}`, type: 'bind', source: join(from, f), options: ['rbind', 'ro'] });
    const spec = {
      ociVersion: '1.0.2',
      process: { terminal: false, user: { uid: 0, gid: 0 }, args: ['sh', '-c', script], env: ['PATH=/bin'], cwd: '/' },
      root: { path: 'rootfs', readonly: false },
      hostname: 'procfs',
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
        ...PROCFS_FILES.map(bind),
      ],
      linux: {
        namespaces: ['pid', 'ipc', 'uts', 'mount', 'network', 'user'].map((type) => ({ type })),
        uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
        gidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
        resources: { memory: { limit: o.memoryBytes ?? 256 * 1024 * 1024 }, ...(o.cpu ? { cpu: o.cpu } : {}) },
      },
    };
    writeFileSync(join(b, 'config.json'), JSON.stringify(spec));
    const runcRoot = join(dir, 'runc');
    const pidFile = join(dir, `${name}.pid`);
    const done = runc(['--root', runcRoot, 'run', '--bundle', b, '--pid-file', pidFile, id]);
    // Register the init as soon as runc has written its pid (the script sleeps 1 s first).
    let pid = 0;
    for (let i = 0; i < 200 && !pid; i++) {
      if (existsSync(pidFile)) pid = Number(readFileSync(pidFile, 'utf8')) || 0;
      if (!pid) await new Promise((r) => setTimeout(r, 10));
    }
    if (!pid) {
      const r = await done;
      throw new Error(`runc wrote no pid (exit ${r.code}): ${r.stderr}`);
    }
    server.register(id, pid);
    const r = await done;
    server.unregister(id);
    await runc(['--root', runcRoot, 'delete', '-f', id]);
    return r;
  }

  it('serves a flat directory of root-owned 0444 files', async () => {
    const { stdout } = await run('stat', ['-c', '%n %a %u %g %F %s', ...PROCFS_FILES.map((f) => join(mnt, f))]);
    expect(stdout.trim().split('\n').map((l) => l.replace(`${mnt}/`, ''))).toEqual(PROCFS_FILES.map((f) => `${f} 444 0 0 regular file 32768`));
    expect((await run('ls', [mnt])).stdout.split('\n').filter(Boolean).sort()).toEqual([...PROCFS_FILES].sort());
  });

  it('gives an unknown caller (this process) the host files', async () => {
    const hostUp = Number((await readFile('/proc/uptime', 'utf8')).split(' ')[0]);
    const viaFuse = Number((await readFile(join(mnt, 'uptime'), 'utf8')).split(' ')[0]);
    expect(Math.abs(viaFuse - hostUp)).toBeLessThan(2);
    expect(await readFile(join(mnt, 'swaps'), 'utf8')).toBe(await readFile('/proc/swaps', 'utf8'));
    const total = (t: string) => t.match(/^MemTotal:.*$/m)?.[0];
    expect(total(await readFile(join(mnt, 'meminfo'), 'utf8'))).toBe(total(await readFile('/proc/meminfo', 'utf8')));
  });

  it('shows a container in its own user/pid namespaces its uptime, no swap and its memory limit', async () => {
    const r = await runContainer('main', 'sleep 1; cat /proc/uptime /proc/swaps; grep MemTotal /proc/meminfo');
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split("\n");
    if (process.env.PROCFS_DEBUG) console.log(JSON.stringify(r));
    const hostUp = Number((await readFile('/proc/uptime', 'utf8')).split(' ')[0]);
    const up = Number(lines[0].split(' ')[0]);
    expect(lines[0]).toMatch(/^\d+\.\d\d \d+\.\d\d$/);
    expect(up).toBeGreaterThanOrEqual(0.9);
    expect(up).toBeLessThan(10);
    expect(hostUp).toBeGreaterThan(up + 10);
    expect(lines[1] + '\n').toBe('Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n');
    expect(lines[2]).toMatch(/^MemTotal: +262144 kB$/);
    expect(lines.slice(3)).toEqual(['']);
  });

  it("shows a container only its CPUs (CFS quota), its own tasks, stat and diskstats", async () => {
    const hostCpus = readFileSync('/proc/stat', 'utf8').match(/^cpu\d+ /gm)!.length;
    const r = await runContainer('cpu', 'sleep 1; cat /proc/cpuinfo; echo ==; cat /proc/stat; echo ==; cat /proc/loadavg; echo ==; cat /proc/diskstats', undefined, {
      cpu: { quota: 50000, period: 100000 },
    });
    expect(r.code, r.stderr).toBe(0);
    const [cpuinfo, st, loadavg, disk] = r.stdout.split('==\n');
    expect(cpuinfo.match(/^processor\s*: \d+$/gm)).toEqual([expect.stringMatching(/: 0$/)]); // ceil(0.5) = 1 CPU
    expect(st.match(/^cpu\d* /gm)).toEqual(['cpu ', 'cpu0 ']);
    const btime = Number(st.match(/^btime (\d+)$/m)?.[1]);
    expect(Math.abs(btime - Date.now() / 1000)).toBeLessThan(15); // the container booted just now
    expect(Number(st.match(/^processes (\d+)$/m)?.[1])).toBeLessThan(50);
    // Its tasks (sh, cat) only; the host's /proc/loadavg counts every thread on the machine.
    const m = loadavg.match(/^(\d+\.\d\d) (\d+\.\d\d) (\d+\.\d\d) (\d+)\/(\d+) (\d+)\n$/);
    expect(m, loadavg).not.toBeNull();
    expect(Number(m![5])).toBeLessThan(10);
    expect(Number(m![6])).toBeLessThan(50);
    const hostTotal = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[3].split('/')[1]);
    expect(hostTotal).toBeGreaterThan(Number(m![5]));
    const lines = disk.trim().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(l).toMatch(/^\s*\d+\s+\d+ \S+( \d+){14,17}$/);
    expect(hostCpus).toBeGreaterThanOrEqual(1);
  });

  it('keeps cached renders per container: two containers reading at once each see only their own limit', async () => {
    // Each reads its meminfo 300 times while the other does the same; with the render cache a mix-up
    // would show the other container's MemTotal.
    const script = 'sleep 1; i=0; while [ $i -lt 300 ]; do grep MemTotal /proc/meminfo; i=$((i+1)); done | sort | uniq -c';
    const [a, b] = await Promise.all([
      runContainer('cache-a', script, undefined, { memoryBytes: 256 * 1024 * 1024 }),
      runContainer('cache-b', script, undefined, { memoryBytes: 128 * 1024 * 1024 }),
    ]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(a.stdout.trim()).toMatch(/^300 MemTotal: +262144 kB$/);
    expect(b.stdout.trim()).toMatch(/^300 MemTotal: +131072 kB$/);
  });

  it('concurrent meminfo readers with different limits: every read, by sendfile too, shows its own MemTotal', async () => {
    // busybox cat copies with sendfile, which reads through the inode's page cache whatever direct_io
    // says: with one inode for every reader, readers got each other's text. Two containers with
    // different limits read their meminfo 2000 times each (one cat of 500 paths, four times) while a
    // host process reads the top-level file through busybox cat as well.
    const reads = 'sleep 1; n=0; while [ $n -lt 4 ]; do cat $(yes /proc/meminfo | head -n 500); n=$((n+1)); done | grep ^MemTotal | sort | uniq -c';
    const hostTotal = (await readFile('/proc/meminfo', 'utf8')).match(/^MemTotal:.*$/m)![0];
    let hostDone = false;
    const host = (async () => {
      const seen = new Map<string, number>();
      // Until both containers are done, and at least 20 rounds of 50 reads.
      for (let round = 0; !hostDone || round < 20; round++) {
        const { stdout } = await run('busybox', ['cat', ...Array<string>(50).fill(join(mnt, 'meminfo'))], { maxBuffer: 1 << 26 });
        for (const l of stdout.match(/^MemTotal:.*$/gm) ?? []) seen.set(l, (seen.get(l) ?? 0) + 1);
      }
      return seen;
    })();
    const [a, b] = await Promise.all([
      runContainer('splice-a', reads, undefined, { memoryBytes: 256 * 1024 * 1024 }),
      runContainer('splice-b', reads, undefined, { memoryBytes: 128 * 1024 * 1024 }),
    ]).finally(() => (hostDone = true));
    const seen = await host;
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(a.stdout.trim()).toMatch(/^2000 MemTotal: +262144 kB$/);
    expect(b.stdout.trim()).toMatch(/^2000 MemTotal: +131072 kB$/);
    expect([...seen.keys()]).toEqual([hostTotal]);
    expect(seen.get(hostTotal)).toBeGreaterThanOrEqual(1000);
  });

  it('serves a fresh uptime through the render cache: never older than 2 TTLs, never going back', async () => {
    const r = await runContainer('fresh', 'sleep 1; cut -d" " -f1 /proc/uptime; sleep 1; cut -d" " -f1 /proc/uptime; i=0; while [ $i -lt 300 ]; do cut -d" " -f1 /proc/uptime; i=$((i+1)); done');
    expect(r.code, r.stderr).toBe(0);
    const v = r.stdout.trim().split('\n').map(Number);
    expect(v).toHaveLength(302);
    expect(v[1] - v[0]).toBeGreaterThanOrEqual(0.98); // a second later: not the value kept from before
    expect(v[1] - v[0]).toBeLessThan(1.5);
    for (let i = 2; i < v.length; i++) expect(v[i]).toBeGreaterThanOrEqual(v[i - 1]);
    expect(new Set(v.slice(2)).size).toBeGreaterThan(3); // it moves during the loop
  });

  it.skipIf(gccMissing !== null)('measures /proc/uptime and /proc/meminfo read throughput: render cache vs none vs plain procfs', async () => {
    const bench = await buildC('proc_read_loop');
    const N = 3000;
    const plain = Number((await run(bench, ['/proc/uptime', String(N)])).stdout);
    const hostPath = Number((await run(bench, [join(mnt, 'uptime'), String(N)])).stdout);
    const inside = async (file: string, noCache: boolean) => {
      const r = await runContainer(`bench-${file}-${noCache ? 'nc' : 'c'}`, `sleep 1; ${basename(bench)} /proc/${file} ${N}`, bench, { noCache });
      expect(r.code, r.stderr).toBe(0);
      return Number(r.stdout);
    };
    const res: Record<string, number> = {};
    for (const f of ['uptime', 'meminfo']) {
      res[`${f} cached`] = await inside(f, false);
      res[`${f} uncached`] = await inside(f, true);
    }
    console.log(
      `[procfs] open+read+close x${N} (static C), reads/s: plain procfs ${plain}; eci FUSE host fallback ${hostPath}; in a container: ` +
        Object.entries(res).map(([k, v]) => `${k} ${v}`).join(', ') +
        `; cache speedup uptime ${(res['uptime cached'] / res['uptime uncached']).toFixed(1)}x, meminfo ${(res['meminfo cached'] / res['meminfo uncached']).toFixed(1)}x`,
    );
    expect(res['uptime cached']).toBeGreaterThan(1.5 * res['uptime uncached']);
    expect(res['meminfo cached']).toBeGreaterThan(1.5 * res['meminfo uncached']);
  });

  it('close() leaves no mount behind', async () => {
    expect(mounted(mnt)).toBe(true);
    await fs.stop();
    expect(mounted(mnt)).toBe(false);
    await fs.stop(); // idempotent
  });
});
