// The procfs FUSE server (native mountProcFs + actors/procfs ProcFs) with a real runc container in its
// own user and pid namespaces: the container sees its own uptime, no swap and its cgroup memory limit
// through bind mounts over /proc/{uptime,swaps,meminfo}; everyone else sees the host's files.
import { execFile } from 'node:child_process';
import { runCmd } from '../helpers/run.ts';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcFs } from '../../actors/procfs/server.ts';
import { makeBusyboxRootfs } from '../helpers/busybox.ts';

const run = promisify(execFile);
const root = process.getuid?.() === 0;
const haveFuse = existsSync('/dev/fuse');
const haveRunc = ['/usr/sbin/runc', '/usr/bin/runc', '/usr/local/sbin/runc'].some(existsSync);
const skip = !root ? 'needs root' : !haveFuse ? 'needs /dev/fuse' : !haveRunc ? 'needs runc' : '';
const mounted = (p: string) => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === p);

const BENCH_C = `
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char** argv) {
  int n = atoi(argv[2]); char buf[4096]; struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int i = 0; i < n; i++) {
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0 || read(fd, buf, sizeof buf) <= 0) { perror(argv[1]); return 1; }
    close(fd);
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%.0f\\n", n / ((b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9));
  return 0;
}
`;

const runc = (args: string[]) => runCmd('runc', args, undefined, undefined, 120_000);

describe.skipIf(skip !== '')(`procfs FUSE with a runc container${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let dir: string;
  let mnt: string;
  let fs: ProcFs;

  beforeAll(async () => {
    dir = mkdtempSync('/tmp/eci-procfs-');
    chmodSync(dir, 0o755); // container root (host uid 100000) walks to the bind sources
    mnt = join(dir, 'mnt');
    mkdirSync(mnt, { mode: 0o755 });
    fs = new ProcFs();
    await fs.start(mnt);
  });
  afterAll(async () => {
    await fs?.stop();
    if (dir) {
      if (mounted(mnt)) await run('umount', ['-l', mnt]).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** Runs `script` as a container's init (runc run) in a fresh busybox bundle and registers the init. */
  async function runContainer(name: string, script: string, extraBin?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const id = `eci-procfs-${name}-${process.pid}`;
    const b = join(dir, name);
    await makeBusyboxRootfs(join(b, 'rootfs'));
    if (extraBin) await run('cp', [extraBin, join(b, 'rootfs/bin/')]);
    chmodSync(b, 0o755);
    const bind = (f: string) => ({ destination: `/proc/${f}`, type: 'bind', source: join(mnt, f), options: ['rbind', 'ro'] });
    const spec = {
      ociVersion: '1.0.2',
      process: { terminal: false, user: { uid: 0, gid: 0 }, args: ['sh', '-c', script], env: ['PATH=/bin'], cwd: '/' },
      root: { path: 'rootfs', readonly: false },
      hostname: 'procfs',
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
        bind('uptime'),
        bind('swaps'),
        bind('meminfo'),
      ],
      linux: {
        namespaces: ['pid', 'ipc', 'uts', 'mount', 'network', 'user'].map((type) => ({ type })),
        uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
        gidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
        resources: { memory: { limit: 256 * 1024 * 1024 } },
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
    fs.register(id, pid);
    const r = await done;
    fs.unregister(id);
    await runc(['--root', runcRoot, 'delete', '-f', id]);
    return r;
  }

  it('serves a flat directory of root-owned 0444 files', async () => {
    const { stdout } = await run('stat', ['-c', '%n %a %u %g %F %s', join(mnt, 'uptime'), join(mnt, 'swaps'), join(mnt, 'meminfo')]);
    expect(stdout.trim().split('\n').map((l) => l.replace(`${mnt}/`, ''))).toEqual([
      'uptime 444 0 0 regular file 32768',
      'swaps 444 0 0 regular file 32768',
      'meminfo 444 0 0 regular file 32768',
    ]);
    expect((await run('ls', [mnt])).stdout.split('\n').filter(Boolean).sort()).toEqual(['meminfo', 'swaps', 'uptime']);
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

  it('measures /proc/uptime read throughput through FUSE vs plain procfs', async () => {
    let gcc = true;
    try {
      await run('gcc', ['--version']);
    } catch {
      gcc = false;
    }
    const bench = join(dir, 'bench');
    if (gcc) {
      writeFileSync(`${bench}.c`, BENCH_C);
      await run('gcc', ['-O2', '-static', '-o', bench, `${bench}.c`]);
    }
    const measure = async (file: string): Promise<number> => {
      if (gcc) return Number((await run(bench, [file, '2000'])).stdout);
      const t = process.hrtime.bigint();
      await run('sh', ['-c', `i=0; while [ $i -lt 2000 ]; do read l < ${file}; i=$((i+1)); done`]);
      return 2000 / (Number(process.hrtime.bigint() - t) / 1e9);
    };
    const plain = await measure('/proc/uptime');
    const fuse = await measure(join(mnt, 'uptime'));
    let inContainer = '';
    if (gcc) {
      const r = await runContainer('benchc', 'sleep 1; bench /proc/uptime 2000', bench);
      expect(r.code, r.stderr).toBe(0);
      inContainer = `, in a container (rendered) ${Number(r.stdout)}/s`;
    }
    console.log(`[procfs] /proc/uptime open+read+close x2000 (${gcc ? 'static C' : 'sh'}): plain procfs ${Math.round(plain)}/s, eci FUSE (host fallback path) ${Math.round(fuse)}/s${inContainer}`);
    expect(fuse).toBeGreaterThan(100);
  });

  it('close() leaves no mount behind', async () => {
    expect(mounted(mnt)).toBe(true);
    await fs.stop();
    expect(mounted(mnt)).toBe(false);
    await fs.stop(); // idempotent
  });
});
