// /proc emulation through Docker: the container's own uptime, swaps, memory limit, CPUs, load and
// disk I/O, also on a second proc mount, and the emulated files cannot be unmounted from inside.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { dockerdAvailable, RUN_FLAGS, type Dockerd } from '../helpers/dockerd.ts';
import { startEciDocker, stopEciDocker } from '../helpers/eci-docker.ts';
import { REPO, type TestManager } from '../helpers/manager.ts';
import { installC } from '../helpers/cprog.ts';

const avail = dockerdAvailable();

describe.skipIf(!avail.ok)(`/proc emulation through Docker${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let m: TestManager;
  let d: Dockerd;
  let img: string;
  let bin: string;
  const run = (...args: string[]) => d.docker(['run', '--rm', ...RUN_FLAGS, '--runtime=eci', ...args]);

  beforeAll(async () => {
    ({ m, d, img } = await startEciDocker());
    bin = await installC(join(mkdtempSync('/tmp/eci-procfs-'), 'bin'), 'mount_at');
  });
  afterAll(async () => {
    await stopEciDocker({ m, d });
    if (bin) rmSync(join(bin, '..'), { recursive: true, force: true });
  });

  it("shows the container's uptime, no swap, and its memory limit", async () => {
    const hostUptime = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    const r = await run('--memory', '256m', img, 'sh', '-c', 'cat /proc/uptime; cat /proc/swaps; grep MemTotal /proc/meminfo');
    expect(r.code, r.stderr).toBe(0);
    const [uptime, swapsHeader, ...rest] = r.stdout.trim().split('\n');
    const up = Number(uptime.split(' ')[0]);
    expect(up).toBeLessThan(10);
    expect(hostUptime).toBeGreaterThan(up);
    expect(swapsHeader).toMatch(/^Filename\s+Type\s+Size\s+Used\s+Priority$/);
    expect(rest.at(-1)).toMatch(/^MemTotal:\s+262144 kB$/);
  });

  it('concurrent meminfo readers with different limits: each container, and a host reader, only ever see their own MemTotal', async () => {
    // busybox cat copies with sendfile, through the page cache of the file's inode (direct_io or not):
    // each container's files are inodes of its own, so no reader can get another's text.
    const reads = 'n=0; while [ $n -lt 4 ]; do cat $(yes /proc/meminfo | head -n 500); n=$((n+1)); done | grep ^MemTotal | sort | uniq -c';
    const hostFile = join(m.env.ECI_RUN_DIR, 'procfs', 'meminfo');
    const hostTotal = readFileSync('/proc/meminfo', 'utf8').match(/^MemTotal:.*$/m)![0];
    let hostDone = false;
    const host = (async () => {
      const seen = new Map<string, number>();
      // Until both containers are done, and at least 20 rounds of 50 reads.
      for (let round = 0; !hostDone || round < 20; round++) {
        const r = spawnSync('busybox', ['cat', ...Array<string>(50).fill(hostFile)], { encoding: 'utf8', maxBuffer: 1 << 26 });
        for (const l of r.stdout.match(/^MemTotal:.*$/gm) ?? []) seen.set(l, (seen.get(l) ?? 0) + 1);
        await new Promise((res) => setImmediate(res));
      }
      return seen;
    })();
    const [a, b] = await Promise.all([
      run('--memory', '256m', img, 'sh', '-c', reads),
      run('--memory', '128m', img, 'sh', '-c', reads),
    ]).finally(() => (hostDone = true));
    const seen = await host;
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(a.stdout.trim()).toMatch(/^2000 MemTotal: +262144 kB$/);
    expect(b.stdout.trim()).toMatch(/^2000 MemTotal: +131072 kB$/);
    expect([...seen.keys()]).toEqual([hostTotal]);
    expect(seen.get(hostTotal)).toBeGreaterThanOrEqual(1000);
  });

  it('free in a 256 MB container: cache and available are the container\'s; /proc/meminfo is all its own', async () => {
    const r = await run('--memory', '256m', img, 'sh', '-c', 'free; cat /proc/meminfo');
    expect(r.code, r.stderr).toBe(0);
    // busybox free takes total, free, shared and buffers from sysinfo(2), the host kernel's (not /proc):
    // its buff/cache (Cached + SReclaimable) and available columns come from /proc/meminfo.
    const mem = r.stdout.match(/^Mem:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m);
    expect(mem, r.stdout).not.toBeNull();
    const [, , , , buffCache, available] = mem!.slice(1).map(Number);
    expect(available).toBeLessThanOrEqual(262144);
    const kB = (key: string) => Number(r.stdout.match(new RegExp(`^${key.replace(/[()]/g, '\\$&')}: +(\\d+) kB$`, 'm'))?.[1]);
    expect(kB('MemTotal')).toBe(262144);
    // What procps free computes from /proc/meminfo: all within the container's 256 MB.
    const cache = kB('Buffers') + kB('Cached') + kB('SReclaimable');
    const used = kB('MemTotal') - kB('MemFree') - cache;
    expect(kB('Buffers')).toBe(0);
    expect(cache).toBeLessThan(262144);
    expect(used).toBeGreaterThanOrEqual(0);
    expect(kB('MemAvailable')).toBeLessThanOrEqual(262144);
    for (const key of ['Active', 'Inactive', 'Active(file)', 'Inactive(file)', 'AnonPages', 'Shmem', 'Slab', 'Committed_AS'])
      expect(kB(key), key).toBeLessThanOrEqual(262144);
    expect(kB('SwapTotal')).toBe(0);
    // busybox's buff/cache column: the container's Cached (+ SReclaimable), below the host's own cache.
    expect(buffCache).toBeGreaterThanOrEqual(kB('Cached'));
    expect(kB('Cached') + kB('SReclaimable')).toBeLessThan(262144);
    const hostCached = Number(readFileSync('/proc/meminfo', 'utf8').match(/^Cached: +(\d+) kB$/m)![1]);
    expect(kB('Cached')).toBeLessThan(hostCached);
  });

  it('--cpus 1 shows one CPU in /proc/cpuinfo and /proc/stat, --cpuset-cpus also to nproc', async () => {
    const hostCpus = readFileSync('/proc/cpuinfo', 'utf8').match(/^processor\s*:/gm)!.length;
    const script = 'grep -c ^processor /proc/cpuinfo; grep -c "^cpu[0-9]" /proc/stat; nproc';
    const quota = await run('--cpus', '1', img, 'sh', '-c', script);
    expect(quota.code, quota.stderr).toBe(0);
    const [qInfo, qStat, qNproc] = quota.stdout.trim().split('\n').map(Number);
    expect([qInfo, qStat]).toEqual([1, 1]);
    expect(qNproc).toBe(hostCpus); // nproc asks the scheduler (affinity), which a quota does not change
    const set = await run('--cpuset-cpus', String(hostCpus - 1), img, 'sh', '-c', `${script}; grep -E "^(btime|processes|procs_running) " /proc/stat`);
    expect(set.code, set.stderr).toBe(0);
    const lines = set.stdout.trim().split('\n');
    expect(lines.slice(0, 3).map(Number)).toEqual([1, 1, 1]);
    // btime is the container's boot, a moment ago; processes counts its forks, not the host's.
    const btime = Number(lines.find((l) => l.startsWith('btime '))!.split(' ')[1]);
    expect(Math.abs(btime - Date.now() / 1000)).toBeLessThan(30);
    const hostBtime = Number(readFileSync('/proc/stat', 'utf8').match(/^btime (\d+)/m)![1]);
    expect(btime).toBeGreaterThan(hostBtime + 60);
    expect(Number(lines.find((l) => l.startsWith('processes '))!.split(' ')[1])).toBeLessThan(100);
  });

  it("shows the container's own load and task counts in /proc/loadavg, and its own /proc/diskstats", async () => {
    const r = await run(img, 'sh', '-c', 'cat /proc/loadavg; echo ==; cat /proc/diskstats; echo ==; dd if=/bin/busybox of=/dev/null bs=64k 2>/dev/null; cat /proc/diskstats');
    expect(r.code, r.stderr).toBe(0);
    const [load, disk] = r.stdout.split('==\n');
    const m = load.match(/^(\d+\.\d\d) (\d+\.\d\d) (\d+\.\d\d) (\d+)\/(\d+) (\d+)\n$/);
    expect(m, load).not.toBeNull();
    const [running, total, lastPid] = [Number(m![4]), Number(m![5]), Number(m![6])];
    expect(running).toBeGreaterThanOrEqual(1);
    expect(total).toBeGreaterThanOrEqual(running);
    expect(total).toBeLessThan(10); // sh and cat; the host runs hundreds of threads
    const hostTotal = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[3].split('/')[1]);
    expect(hostTotal).toBeGreaterThan(total);
    expect(lastPid).toBeLessThan(100); // a pid of the container's namespace
    const lines = disk.trim().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(l).toMatch(/^\s*\d+\s+\d+ \S+( \d+){14,17}$/);
    // Same devices as the host's file, never the host's counters (the host's disks have done I/O).
    const names = (t: string) => t.trim().split('\n').map((l) => l.trim().split(/\s+/)[2]);
    expect(names(disk)).toEqual(names(readFileSync('/proc/diskstats', 'utf8')));
    const busiest = readFileSync('/proc/diskstats', 'utf8').trim().split('\n').map((l) => l.trim().split(/\s+/)).sort((a, b) => Number(b[3]) - Number(a[3]))[0];
    const mine = lines.map((l) => l.trim().split(/\s+/)).find((f) => f[2] === busiest[2])!;
    expect(Number(mine[3])).toBeLessThan(Number(busiest[3]));
  });

  it('eci check passes every property against this engine', async () => {
    const r = spawnSync(process.execPath, [join(REPO, 'bin/eci'), 'check', '--host', `unix://${d.socket}`, '--image', img], { encoding: 'utf8', env: { ...process.env, ...m.env } });
    console.log(r.stdout);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^PROPERTY\s+EXPECTED\s+OBSERVED\s+PASS/);
    expect(r.stdout).toMatch(/(\d+) passed, 0 failed/);
    expect(r.stdout).not.toMatch(/\sNO$/m);
  });

  it('a proc filesystem the container mounts itself shows the emulated files too', async () => {
    const r = await run('--cap-add', 'SYS_ADMIN', '--cpus', '1', img, 'sh', '-c',
      'mkdir -p /tmp/p && mount -t proc proc /tmp/p && cat /tmp/p/uptime && cat /tmp/p/swaps | wc -l && grep -c ^processor /tmp/p/cpuinfo && cut -d" " -f4 /tmp/p/loadavg');
    expect(r.code, r.stderr).toBe(0);
    const [uptime, swapLines, cpus, tasks] = r.stdout.trim().split('\n');
    expect(Number(uptime.split(' ')[0])).toBeLessThan(10);
    expect(swapLines.trim()).toBe('1');
    expect(cpus.trim()).toBe('1');
    expect(Number(tasks.split('/')[1])).toBeLessThan(10);
  });

  it('a proc filesystem mounted onto /proc/self/fd/N (as runc mounts) shows the emulated files too', async () => {
    const r = await run('--cap-add', 'SYS_ADMIN', '--cpus', '1', '-v', `${bin}:/eci-bin:ro`, img, 'sh', '-c',
      'mkdir -p /tmp/p && exec 5</tmp/p && /eci-bin/mount_at proc /proc/self/fd/5 proc && cat /tmp/p/uptime && grep -c ^processor /tmp/p/cpuinfo');
    expect(r.code, r.stderr).toBe(0);
    const [mount, uptime, cpus] = r.stdout.trim().split('\n');
    expect(mount).toBe('mount=0 errno=0');
    expect(Number(uptime.split(' ')[0])).toBeLessThan(10);
    expect(cpus.trim()).toBe('1');
  });

  it('a process in a nested pid namespace still sees its container, not the host', async () => {
    const r = await run('--cap-add', 'SYS_ADMIN', '--memory', '256m', '--cpus', '1', img, 'sh', '-c',
      'unshare -p -f sh -c "echo \\$\\$; grep MemTotal /proc/meminfo; grep -c ^processor /proc/cpuinfo; cat /proc/uptime"');
    expect(r.code, r.stderr).toBe(0);
    const [pid, total, cpus, uptime] = r.stdout.trim().split('\n');
    expect(pid).toBe('1'); // really in a new pid namespace
    expect(total).toMatch(/^MemTotal:\s+262144 kB$/);
    expect(cpus).toBe('1');
    expect(Number(uptime.split(' ')[0])).toBeLessThan(10);
  });

  it('refuses to unmount an emulated file from inside', async () => {
    const r = await run('--cap-add', 'SYS_ADMIN', img, 'sh', '-c', 'umount /proc/uptime; echo rc=$?; cat /proc/uptime');
    expect(r.stdout).toMatch(/rc=1/);
    expect(Number(r.stdout.trim().split('\n').at(-1)!.split(' ')[0])).toBeLessThan(10);
  });
});
