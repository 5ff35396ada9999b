import { linkSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { HOST_CPUINFO, HOST_DISKSTATS, HOST_MEMINFO, HOST_STAT } from '../helpers/procfs-fixtures.ts';
import { SWAPS_HEADER } from '../../actors/procfs/render.ts';
import { cgroupMemoryOf } from '../../actors/procfs/cgroup-memory.ts';

vi.mock('../../native/index.ts', () => import('../../native/mock.ts'));
const { procFsMock } = await import('../../native/mock.ts');
const { ProcFs } = await import('../../actors/procfs/server.ts');


describe('ProcFs (native mocked, fake /proc and cgroup tree)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eci-procfs-unit-'));
  const proc = join(dir, 'proc');
  const cgroupRoot = join(dir, 'cgroup');
  const put = (p: string, text: string) => {
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, text);
  };
  const stat = (start: number) => `1 (sh) S ${Array.from({ length: 18 }, () => '0').join(' ')} ${start} 0 0`;
  // host: our own pid; container init 500 and a process 501 in its pid namespace (same ns file inode
  // cannot be shared by two fake files, so 501's ns/pid is a hard link to 500's).
  put(join(proc, String(process.pid), 'ns', 'pid'), 'host');
  put(join(proc, String(process.pid), 'cgroup'), '4:memory:/\n0::/\n');
  put(join(proc, '500', 'ns', 'pid'), 'ctr');
  mkdirSync(join(proc, '501', 'ns'), { recursive: true });
  linkSync(join(proc, '500', 'ns', 'pid'), join(proc, '501', 'ns', 'pid'));
  put(join(proc, '500', 'stat'), stat(99_000)); // 990 s after boot at CLK_TCK 100
  put(join(proc, '500', 'cgroup'), '4:memory:/c1\n0::/c1\n');
  put(join(cgroupRoot, 'memory', 'c1', 'memory.limit_in_bytes'), String(256 * 1024 * 1024));
  put(join(cgroupRoot, 'memory', 'c1', 'memory.usage_in_bytes'), '0');
  put(join(proc, 'uptime'), '1000.00 4000.00\n');
  put(join(proc, 'swaps'), SWAPS_HEADER + '/swapfile file 100 0 -2\n');
  put(join(proc, 'meminfo'), HOST_MEMINFO);

  beforeEach(() => procFsMock.reset());
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('renders for a process of a registered container and passes the host file to others', async () => {
    const fs = new ProcFs({ roots: { proc, cgroupRoot } });
    await fs.start('/mnt/procfs');
    expect(procFsMock.mounts.get('/mnt/procfs')?.files).toEqual(['uptime', 'swaps', 'meminfo', 'cpuinfo', 'stat', 'loadavg', 'diskstats']);
    fs.register('c1', 500);
    const up = await procFsMock.read('/mnt/procfs', 'uptime', 501);
    expect(up).toMatch(/^10\.00 \d+\.\d\d\n$/); // clkTck() is the host's; this test assumes 100
    expect(await procFsMock.read('/mnt/procfs', 'swaps', 501)).toBe(SWAPS_HEADER);
    expect(await procFsMock.read('/mnt/procfs', 'meminfo', 501)).toMatch(/^MemTotal: +262144 kB$/m);
    expect(await procFsMock.read('/mnt/procfs', 'uptime', process.pid)).toBe('1000.00 4000.00\n');
    expect(await procFsMock.read('/mnt/procfs', 'swaps', process.pid)).toContain('/swapfile');
    // A caller gone before it could be attributed fails (EIO) rather than get the host's file, which the
    // FUSE server could otherwise keep for the container's namespace.
    await expect(procFsMock.read('/mnt/procfs', 'swaps', 777)).rejects.toThrow(/EIO/);
    fs.unregister('c1');
    expect(await procFsMock.read('/mnt/procfs', 'uptime', 501)).toBe('1000.00 4000.00\n');
    await fs.stop();
    expect(procFsMock.mounts.size).toBe(0);
  });

  it('renders cpuinfo, stat, loadavg and diskstats for the container, never the host figures', async () => {
    put(join(proc, 'cpuinfo'), HOST_CPUINFO);
    put(join(proc, 'stat'), HOST_STAT);
    put(join(proc, 'diskstats'), HOST_DISKSTATS);
    put(join(proc, '500', 'status'), 'Name:\tsh\nNSpid:\t500\t1\nCpus_allowed_list:\t0-3\nvoluntary_ctxt_switches:\t3\nnonvoluntary_ctxt_switches:\t0\n');
    put(join(cgroupRoot, 'unified', 'c1', 'cpu.max'), '200000 100000\n');
    put(join(cgroupRoot, 'unified', 'c1', 'cgroup.threads'), '500\n');
    const fs = new ProcFs({ roots: { proc, cgroupRoot } });
    await fs.start('/mnt/procfs');
    fs.register('c1', 500);
    expect((await procFsMock.read('/mnt/procfs', 'cpuinfo', 501)).match(/^processor/gm)).toHaveLength(2);
    const st = await procFsMock.read('/mnt/procfs', 'stat', 501);
    expect(st.match(/^cpu\d+ /gm)).toEqual(['cpu0 ', 'cpu1 ']);
    expect(st).toMatch(/^btime 1700000990$/m); // host btime + the init's start (990 s)
    expect(st).toMatch(/^ctxt 3$/m);
    expect(st).not.toMatch(/^processes 54321$/m);
    expect(await procFsMock.read('/mnt/procfs', 'loadavg', 501)).toBe('0.00 0.00 0.00 1/1 1\n');
    expect(await procFsMock.read('/mnt/procfs', 'diskstats', 501)).toMatch(/^ {3}8 {7}0 sda 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0$/m);
    expect(await procFsMock.read('/mnt/procfs', 'stat', process.pid)).toBe(HOST_STAT);
    await fs.stop();
  });

  it("finds a caller in a nested pid namespace by its cgroup, and never gives a container the host's uptime", async () => {
    put(join(proc, '502', 'ns', 'pid'), 'nested'); // its own pid namespace, inside c1's cgroup
    put(join(proc, '502', 'cgroup'), '4:memory:/c1/sub\n0::/c1\n');
    put(join(proc, '503', 'ns', 'pid'), 'other'); // another pid namespace in a look-alike cgroup
    put(join(proc, '503', 'cgroup'), '4:memory:/c10\n0::/c10\n');
    put(join(proc, '504', 'ns', 'pid'), 'dying');
    put(join(proc, '504', 'cgroup'), '4:memory:/c4\n');
    const fs = new ProcFs({ roots: { proc, cgroupRoot } });
    await fs.start('/mnt/procfs');
    fs.register('c1', 500);
    expect(await procFsMock.read('/mnt/procfs', 'meminfo', 502)).toMatch(/^MemTotal: +262144 kB$/m);
    expect(await procFsMock.read('/mnt/procfs', 'meminfo', 503)).toBe(HOST_MEMINFO);
    fs.register('c4', 504);
    rmSync(join(proc, '504', 'stat'), { force: true }); // its init's stat is gone: uptime 0, not the host's
    expect(await procFsMock.read('/mnt/procfs', 'uptime', 504)).toBe('0.00 0.00\n');
    await fs.stop();
  });

  it('tells apart two containers of a group sharing one pid namespace (--pid container:X) by cgroup', async () => {
    mkdirSync(join(proc, '505', 'ns'), { recursive: true });
    linkSync(join(proc, '500', 'ns', 'pid'), join(proc, '505', 'ns', 'pid'));
    put(join(proc, '505', 'cgroup'), '4:memory:/c5\n0::/c5\n');
    put(join(cgroupRoot, 'memory', 'c5', 'memory.limit_in_bytes'), String(128 * 1024 * 1024));
    put(join(cgroupRoot, 'memory', 'c5', 'memory.usage_in_bytes'), '0');
    const fs = new ProcFs({ roots: { proc, cgroupRoot } });
    await fs.start('/mnt/procfs');
    fs.register('c1', 500);
    fs.register('c5', 505);
    expect(await procFsMock.read('/mnt/procfs', 'meminfo', 505)).toMatch(/^MemTotal: +131072 kB$/m);
    expect(await procFsMock.read('/mnt/procfs', 'meminfo', 500)).toMatch(/^MemTotal: +262144 kB$/m);
    await fs.stop();
  });

  it('lets the FUSE server cache only registered namespaces, and drops them on unregister', async () => {
    const calls: [number, boolean][] = [];
    let opts: { cacheMs?: Readonly<Record<string, number>> } = {};
    const fs = new ProcFs({
      roots: { proc, cgroupRoot },
      mount: (o) => {
        opts = o;
        return { close: () => Promise.resolve(), cache: (ns, on) => calls.push([ns, on]) };
      },
    });
    await fs.start('/mnt/procfs');
    expect(opts.cacheMs).toMatchObject({ uptime: 10, meminfo: 100 });
    fs.register('c1', 500);
    fs.register('c1-exec', 501); // same pid namespace, e.g. a second registration
    fs.unregister('c1');
    const ns = calls[0][0];
    expect(calls).toEqual([[ns, true], [ns, true]]); // still used by c1-exec: kept
    fs.unregister('c1-exec');
    expect(calls.at(-1)).toEqual([ns, false]);
    await fs.stop();
  });

  it("serves each container's view with its own files whoever reads, and nothing before registration or after", async () => {
    const fs = new ProcFs({ roots: { proc, cgroupRoot } });
    await fs.start('/mnt/procfs');
    const view = fs.viewDir('c1')!;
    expect(view).toBe('/mnt/procfs/ctr-c1');
    await expect(procFsMock.read(view, 'meminfo', 501)).rejects.toThrow(/EIO/); // created, not yet registered
    fs.register('c1', 500);
    for (const pid of [501, process.pid, 777]) // its own process, a host process, a gone one
      expect(await procFsMock.read(view, 'meminfo', pid)).toMatch(/^MemTotal: +262144 kB$/m);
    expect(await procFsMock.read('/mnt/procfs', 'meminfo', process.pid)).toBe(HOST_MEMINFO);
    fs.unregister('c1');
    await expect(procFsMock.read(view, 'meminfo', 501)).rejects.toThrow(/ENOENT/);
    expect(() => fs.viewDir('x/y')).toThrow(/not a plain name/);
    await fs.stop();
  });

  it('refuses a gone init and one in the host pid namespace', async () => {
    const fs = new ProcFs({ roots: { proc, cgroupRoot } });
    await fs.start('/mnt/procfs');
    expect(() => fs.register('gone', 999)).toThrow(/no process 999/);
    expect(() => fs.register('host', process.pid)).toThrow(/shares the host pid namespace/);
    await fs.stop();
  });

  it('reads v1 memory before v2, and v2 under unified on a hybrid host', async () => {
    expect(await cgroupMemoryOf(500, { proc, cgroupRoot })).toEqual({ limitBytes: 268435456, usageBytes: 0 });
    put(join(proc, '600', 'cgroup'), '4:memory:/\n0::/c2\n');
    put(join(cgroupRoot, 'unified', 'c2', 'memory.max'), 'max\n');
    put(join(cgroupRoot, 'unified', 'c2', 'memory.current'), '4096\n');
    expect(await cgroupMemoryOf(600, { proc, cgroupRoot })).toEqual({ limitBytes: undefined, usageBytes: 4096 });
    put(join(cgroupRoot, 'unified', 'c2', 'memory.stat'), 'anon 8192\nfile 4096\n');
    expect((await cgroupMemoryOf(600, { proc, cgroupRoot })).stat).toMatchObject({ anon: 8192, cache: 4096, shmem: 0 });
  });
});

// A 4-CPU x86 host, trimmed to the lines that matter.
