import { linkSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { SWAPS_HEADER, meminfo, swaps, uptime } from '../../actors/procfs/render.ts';
import { cgroupMemoryOf, parseNSpid, parseProcCgroup, parseStartTicks } from '../../actors/procfs/container-info.ts';

vi.mock('../../native/index.ts', () => import('../../native/mock.ts'));
const { procFsMock } = await import('../../native/mock.ts');
const { ProcFs } = await import('../../actors/procfs/server.ts');

const HOST_MEMINFO =
  'MemTotal:       16303852 kB\n' +
  'MemFree:         9876543 kB\n' +
  'MemAvailable:   12345678 kB\n' +
  'Buffers:          123456 kB\n' +
  'SwapTotal:             0 kB\n';

describe('render.uptime', () => {
  it('is now - start, two decimals, and idle as given', () => {
    expect(uptime(1000.5, 995.25, 3)).toBe('5.25 3.00\n');
    expect(uptime(12345.678, 0, 0.004)).toBe('12345.68 0.00\n');
  });
  it('floors negative values at 0', () => {
    expect(uptime(10, 11, -4)).toBe('0.00 0.00\n');
  });
});

describe('render.swaps', () => {
  it('is the kernel header alone', () => {
    expect(swaps()).toBe(SWAPS_HEADER);
    expect(swaps()).toBe('Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n');
  });
});

describe('render.meminfo', () => {
  it('takes MemTotal/MemFree/MemAvailable from the limit and usage, keeping the layout', () => {
    const out = meminfo(HOST_MEMINFO, { limitBytes: 256 * 1024 * 1024, usageBytes: 10 * 1024 * 1024 });
    expect(out.split('\n')).toEqual([
      'MemTotal:         262144 kB',
      'MemFree:          251904 kB',
      'MemAvailable:     251904 kB',
      'Buffers:          123456 kB',
      'SwapTotal:             0 kB',
      '',
    ]);
  });
  it('is the host file without a limit or with a limit above the host memory', () => {
    expect(meminfo(HOST_MEMINFO, {})).toBe(HOST_MEMINFO);
    expect(meminfo(HOST_MEMINFO, { limitBytes: 64 * 2 ** 30 })).toBe(HOST_MEMINFO);
  });
  it('never shows more free memory than the host has, nor negative', () => {
    const tight = 'MemTotal: 1000000 kB\nMemFree: 100 kB\nMemAvailable: 200 kB\n';
    expect(meminfo(tight, { limitBytes: 512 * 1024 * 1024, usageBytes: 0 })).toMatch(/^MemTotal: +524288 kB\nMemFree: 100 kB\nMemAvailable: 200 kB\n$/);
    expect(meminfo(HOST_MEMINFO, { limitBytes: 1024 * 1024, usageBytes: 5 * 1024 * 1024 })).toMatch(/^MemTotal: +1024 kB\nMemFree: +0 kB\nMemAvailable: +0 kB\n/);
  });
});

describe('container-info parsers', () => {
  it('reads NSpid, starttime (comm with spaces and parens) and /proc/pid/cgroup', () => {
    expect(parseNSpid('Name:\tsh\nNSpid:\t4242\t7\t1\n')).toEqual([4242, 7, 1]);
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    expect(parseStartTicks(`12 (a) b) (c) ${fields.join(' ')}`)).toBe(22);
    const cg = parseProcCgroup('4:memory:/x/c1\n2:cpu,cpuacct:/x/c1\n0::/u/c1\n');
    expect([cg.get('memory'), cg.get('cpuacct'), cg.get('')]).toEqual(['/x/c1', '/x/c1', '/u/c1']);
  });
});

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
    expect(procFsMock.mounts.get('/mnt/procfs')?.files).toEqual(['uptime', 'swaps', 'meminfo']);
    fs.register('c1', 500);
    const up = await procFsMock.read('/mnt/procfs', 'uptime', 501);
    expect(up).toMatch(/^10\.00 \d+\.\d\d\n$/); // clkTck() is the host's; this test assumes 100
    expect(await procFsMock.read('/mnt/procfs', 'swaps', 501)).toBe(SWAPS_HEADER);
    expect(await procFsMock.read('/mnt/procfs', 'meminfo', 501)).toMatch(/^MemTotal: +262144 kB$/m);
    expect(await procFsMock.read('/mnt/procfs', 'uptime', process.pid)).toBe('1000.00 4000.00\n');
    expect(await procFsMock.read('/mnt/procfs', 'swaps', 777)).toContain('/swapfile');
    fs.unregister('c1');
    expect(await procFsMock.read('/mnt/procfs', 'uptime', 501)).toBe('1000.00 4000.00\n');
    await fs.stop();
    expect(procFsMock.mounts.size).toBe(0);
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
  });
});
