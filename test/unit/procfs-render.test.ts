import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { HOST_CPUINFO, HOST_DISKSTATS, HOST_MEMINFO, HOST_STAT } from '../helpers/procfs-fixtures.ts';
import { SWAPS_HEADER, cpuinfo, decayLoad, diskstats, loadavg, meminfo, stat, statCpus, swaps, uptime, visibleCpus } from '../../actors/procfs/render.ts';
import { cgroupCpuOf, cgroupIoOf, cgroupTasksOf, parseBlkio, parseCpuList, parseIoStat } from '../../actors/procfs/cgroup-files.ts';
import { parseMemoryStat } from '../../actors/procfs/cgroup-memory.ts';
import { parseNSpid, parseProcCgroup, parseStartTicks, parseState, sampleTasks } from '../../actors/procfs/container-info.ts';

vi.mock('../../native/index.ts', () => import('../../native/mock.ts'));


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

describe('render.meminfo with the cgroup memory.stat (every amount the container\'s)', () => {
  const HOST_FULL = [
    'MemTotal:       24731400 kB', 'MemFree:        20205324 kB', 'MemAvailable:   23489572 kB', 'Buffers:          118100 kB',
    'Cached:          3325028 kB', 'SwapCached:            0 kB', 'Active:          1146900 kB', 'Inactive:        2869732 kB',
    'Active(anon):        280 kB', 'Inactive(anon):   583444 kB', 'Active(file):    1146620 kB', 'Inactive(file):  2286288 kB',
    'Unevictable:       17120 kB', 'Mlocked:           13604 kB', 'SwapTotal:       1048576 kB', 'SwapFree:        1048576 kB',
    'Dirty:              9912 kB', 'Writeback:             0 kB', 'AnonPages:        590620 kB', 'Mapped:            68128 kB',
    'Shmem:             10220 kB', 'KReclaimable:     162340 kB', 'Slab:             211052 kB', 'SReclaimable:     162340 kB',
    'SUnreclaim:        48712 kB', 'KernelStack:        4672 kB', 'PageTables:        27352 kB', 'CommitLimit:    12365700 kB',
    'Committed_AS:     760472 kB', 'VmallocTotal:   34359738367 kB', 'AnonHugePages:      2048 kB', 'HugePages_Total:       0',
    'Hugepagesize:       2048 kB', 'DirectMap2M:     2076672 kB', '',
  ].join('\n');
  const MiB = 1024 * 1024;

  it('parses v1 (hierarchical totals first) and v2 memory.stat', () => {
    const v1 = parseMemoryStat('cache 1\nrss 2\ntotal_cache 10485760\ntotal_rss 4194304\ntotal_shmem 1048576\ntotal_active_file 2097152\ntotal_inactive_file 8388608\n', 1);
    expect(v1).toMatchObject({ cache: 10 * MiB, anon: 4 * MiB, shmem: MiB, activeFile: 2 * MiB, inactiveFile: 8 * MiB, slabReclaimable: 0 });
    const v2 = parseMemoryStat('anon 4194304\nfile 10485760\nslab_reclaimable 1048576\nslab_unreclaimable 524288\nshmem 0\nfile_mapped 2097152\n', 2);
    expect(v2).toMatchObject({ cache: 10 * MiB, anon: 4 * MiB, slabReclaimable: MiB, slabUnreclaimable: MiB / 2, mapped: 2 * MiB, dirty: 0 });
  });

  it('shows the cgroup\'s cache, lists, slab and no swap, never more than the limit; host facts stay', () => {
    const stat = parseMemoryStat('anon 41943040\nfile 20971520\nshmem 1048576\nactive_anon 31457280\ninactive_anon 10485760\n' +
      'active_file 4194304\ninactive_file 16777216\nslab_reclaimable 2097152\nslab_unreclaimable 1048576\nkernel_stack 65536\n', 2);
    const out = meminfo(HOST_FULL, { limitBytes: 256 * MiB, usageBytes: 70 * MiB, stat });
    const v = Object.fromEntries(out.split('\n').filter(Boolean).map((l) => [l.split(':')[0], l.split(':')[1].trim()]));
    expect(v).toMatchObject({
      MemTotal: '262144 kB', MemFree: String(262144 - 71680) + ' kB', MemAvailable: String(262144 - 71680 + 20480 + 2048) + ' kB',
      Buffers: '0 kB', Cached: '20480 kB', SwapCached: '0 kB', Active: '34816 kB', Inactive: '26624 kB',
      'Active(file)': '4096 kB', 'Inactive(file)': '16384 kB', Mlocked: '0 kB', SwapTotal: '0 kB', SwapFree: '0 kB',
      AnonPages: '40960 kB', Shmem: '1024 kB', Slab: '3072 kB', SReclaimable: '2048 kB', SUnreclaim: '1024 kB', KernelStack: '64 kB',
      CommitLimit: '262144 kB', Committed_AS: '41984 kB',
      VmallocTotal: '34359738367 kB', HugePages_Total: '0', Hugepagesize: '2048 kB', DirectMap2M: '2076672 kB',
    });
    expect(out.split('\n')[0]).toBe('MemTotal:         262144 kB'); // the column kept
    // free(1)'s buff/cache (Buffers + Cached + SReclaimable) fits in the container.
    expect(20480 + 2048).toBeLessThanOrEqual(262144);
    // A figure above the limit (a cgroup that was over it) is cut to it.
    const over = meminfo(HOST_FULL, { limitBytes: 16 * MiB, usageBytes: 16 * MiB, stat });
    expect(over).toMatch(/^Cached: +16384 kB$/m);
    expect(over).toMatch(/^MemAvailable: +16384 kB$/m);
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


describe('render.visibleCpus', () => {
  it('is the cpuset among the online CPUs, cut to ceil(quota)', () => {
    expect(visibleCpus([0, 1, 2, 3], undefined, undefined)).toEqual([0, 1, 2, 3]);
    expect(visibleCpus([0, 1, 2, 3], [1, 3], undefined)).toEqual([1, 3]);
    expect(visibleCpus([0, 1, 2, 3], [0, 1, 2, 3], 1)).toEqual([0]);
    expect(visibleCpus([0, 1, 2, 3], [0, 1, 2, 3], 1.5)).toEqual([0, 1]);
    expect(visibleCpus([0, 1, 2, 3], [2, 3], 0.1)).toEqual([2]);
    expect(visibleCpus([0, 1, 2, 3], [1, 3], 8)).toEqual([1, 3]);
    expect(visibleCpus([0, 1], [7], undefined)).toEqual([0, 1]); // a cpuset of no online CPU: all, never none
  });
  it('reads the online CPUs from /proc/stat', () => {
    expect(statCpus(HOST_STAT)).toEqual([0, 1, 2, 3]);
  });
});

describe('render.cpuinfo', () => {
  it('keeps the visible CPUs, renumbered from 0', () => {
    const out = cpuinfo(HOST_CPUINFO, [1, 3]);
    const blocks = out.split('\n\n').filter(Boolean);
    expect(blocks).toHaveLength(2);
    expect(blocks.map((b) => b.match(/^processor\t: (\d+)$/m)?.[1])).toEqual(['0', '1']);
    expect(blocks.map((b) => b.match(/^core id\t\t: (\d+)$/m)?.[1])).toEqual(['1', '3']); // the host CPU's own block
    expect(out.endsWith('\n\n')).toBe(true);
    expect(out.match(/^processor/gm)).toHaveLength(2);
  });
  it('keeps a trailer block without a processor line', () => {
    const arm = 'processor\t: 0\nBogoMIPS\t: 50.00\n\nprocessor\t: 1\nBogoMIPS\t: 50.00\n\nHardware\t: Test\n';
    expect(cpuinfo(arm, [1])).toBe('processor\t: 0\nBogoMIPS\t: 50.00\n\nHardware\t: Test\n\n');
  });
});

describe('render.stat', () => {
  const base = { uptimeSeconds: 100, btime: 1700000500, clkTck: 100 };
  it('shows one line per visible CPU, per-CPU usage, idle = uptime - busy, the container task counts', () => {
    const out = stat({
      ...base, cpus: [1, 3], perCpuUser: [9, 2, 9, 4], perCpuSystem: [9, 1, 9, 0.5], userSeconds: 6, systemSeconds: 1.5,
      tasks: { running: 2, blocked: 1, ctxt: 77, lastPid: 12 },
    });
    expect(out.split('\n')).toEqual([
      'cpu  600 0 150 19250 0 0 0 0 0 0',
      'cpu0 200 0 100 9700 0 0 0 0 0 0',
      'cpu1 400 0 50 9550 0 0 0 0 0 0',
      'intr 0',
      'ctxt 77',
      'btime 1700000500',
      'processes 12',
      'procs_running 2',
      'procs_blocked 1',
      'softirq 0 0 0 0 0 0 0 0 0 0 0',
      '',
    ]);
  });
  it('spreads the total evenly without per-CPU figures, and never goes negative', () => {
    const out = stat({ ...base, cpus: [0, 1], userSeconds: 300, systemSeconds: 10 });
    expect(out).toMatch(/^cpu0 15000 0 500 0 0 0 0 0 0 0$/m);
    expect(out).toMatch(/^cpu1 15000 0 500 0 0 0 0 0 0 0$/m);
    expect(out).toMatch(/^procs_running 1$/m);
    expect(stat({ ...base, cpus: [0] })).toMatch(/^cpu  0 0 0 10000 0 0 0 0 0 0\ncpu0 0 0 0 10000 0 0 0 0 0 0\n/);
  });
});

describe('render.loadavg', () => {
  it('starts at 0 and decays towards the active task count like the kernel', () => {
    const l0 = decayLoad(undefined, 3, 1000);
    expect(l0.avg).toEqual([0, 0, 0]);
    const l1 = decayLoad(l0, 2, 1060); // one minute of 2 active tasks
    expect(l1.avg[0]).toBeCloseTo(2 * (1 - Math.exp(-1)), 6);
    expect(l1.avg[1]).toBeCloseTo(2 * (1 - Math.exp(-60 / 300)), 6);
    const l2 = decayLoad(l1, 0, 1060 + 3600);
    expect(l2.avg[0]).toBeLessThan(0.001);
    expect(decayLoad(l1, 5, 1000).avg).toEqual(l1.avg); // time going back: no change
  });
  it('prints the kernel format', () => {
    expect(loadavg([0.5, 0.123, 2], 1, 4, 37)).toBe('0.50 0.12 2.00 1/4 37\n');
    expect(loadavg([0, 0, 0], 0, 0, 1)).toBe('0.00 0.00 0.00 1/1 1\n');
    expect(loadavg([0, 0, 0], 0, 0, 1)).toMatch(/^\d+\.\d\d \d+\.\d\d \d+\.\d\d \d+\/\d+ \d+\n$/);
  });
});

describe('render.diskstats', () => {
  it("keeps the host's devices and columns with the container's counters", () => {
    const io = new Map([['8:0', { readIos: 4, writeIos: 2, readBytes: 4096, writeBytes: 1024, discardIos: 1, discardBytes: 512 }]]);
    expect(diskstats(HOST_DISKSTATS, io).split('\n')).toEqual([
      '   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0',
      '   8       0 sda 4 0 8 0 2 0 2 0 0 0 0 1 0 1 0 0 0',
      '   8       1 sda1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0',
      '',
    ]);
    expect(diskstats('', io)).toBe('');
  });
});

describe('container-info cpu, tasks and io parsers', () => {
  it('parses cpu lists, states, io.stat and blkio tables', () => {
    expect(parseCpuList('0-3,8,10-11\n')).toEqual([0, 1, 2, 3, 8, 10, 11]);
    expect(parseCpuList('')).toEqual([]);
    expect(parseState('42 (a) b) (c) R 1 2')).toBe('R');
    expect(parseIoStat('8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n253:1 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6\n').get('253:1'))
      .toEqual({ readBytes: 1, writeBytes: 2, readIos: 3, writeIos: 4, discardBytes: 5, discardIos: 6 });
    const b = parseBlkio('8:0 Read 3\n8:0 Write 4\n8:0 Sync 7\n8:0 Total 7\nTotal 7\n', '8:0 Read 4096\n8:0 Write 8192\n');
    expect(b.get('8:0')).toEqual({ readIos: 3, writeIos: 4, readBytes: 4096, writeBytes: 8192, discardIos: 0, discardBytes: 0 });
  });
});

describe('container-info on fake v1 and v2 cgroup trees', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eci-procfs-cg-'));
  const proc = join(dir, 'proc');
  const cgroupRoot = join(dir, 'cgroup');
  const r = { proc, cgroupRoot };
  const put = (p: string, text: string) => {
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, text);
  };
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  // v1 (this host's hybrid layout): pid 700 in /d/c7 of every controller.
  put(join(proc, '700', 'cgroup'), '9:name=systemd:/d/c7\n8:pids:/d/c7\n7:blkio:/d/c7\n3:cpuset:/d/c7\n2:cpuacct:/d/c7\n1:cpu:/d/c7\n0::/\n');
  put(join(cgroupRoot, 'cpuset/d/c7/cpuset.effective_cpus'), '0-1\n');
  put(join(cgroupRoot, 'cpu/d/c7/cpu.cfs_quota_us'), '150000\n');
  put(join(cgroupRoot, 'cpu/d/c7/cpu.cfs_period_us'), '100000\n');
  put(join(cgroupRoot, 'cpuacct/d/c7/cpuacct.usage_percpu_user'), '2000000000 1000000000 \n');
  put(join(cgroupRoot, 'cpuacct/d/c7/cpuacct.usage_percpu_sys'), '500000000 0 \n');
  put(join(cgroupRoot, 'pids/d/c7/tasks'), '700\n701\n702\n');
  put(join(cgroupRoot, 'blkio/d/c7/blkio.throttle.io_serviced_recursive'), '8:0 Read 2\n8:0 Write 1\nTotal 3\n');
  put(join(cgroupRoot, 'blkio/d/c7/blkio.throttle.io_service_bytes_recursive'), '8:0 Read 8192\n8:0 Write 4096\nTotal 12288\n');
  put(join(proc, '700', 'stat'), '700 (sh) S 1 2');
  put(join(proc, '700', 'status'), 'Name:\tsh\nNSpid:\t700\t1\nvoluntary_ctxt_switches:\t10\nnonvoluntary_ctxt_switches:\t1\n');
  put(join(proc, '701', 'stat'), '701 (yes) R 1 2');
  put(join(proc, '701', 'status'), 'Name:\tyes\nNSpid:\t701\t9\nvoluntary_ctxt_switches:\t0\nnonvoluntary_ctxt_switches:\t5\n');
  // 702 exited between the tasks listing and the sample: skipped.
  // v2 (unified under /sys/fs/cgroup/unified on a hybrid host, no v1 controllers): pid 800.
  put(join(proc, '800', 'cgroup'), '0::/k/c8\n');
  put(join(proc, '800', 'status'), 'Name:\tsh\nCpus_allowed_list:\t2-3\n');
  put(join(cgroupRoot, 'unified/k/c8/cpu.max'), '50000 100000\n');
  put(join(cgroupRoot, 'unified/k/c8/cpu.stat'), 'usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\n');
  put(join(cgroupRoot, 'unified/k/c8/cgroup.threads'), '800\n');
  put(join(cgroupRoot, 'unified/k/c8/io.stat'), '8:0 rbytes=512 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n');

  it('reads v1 cpuset, CFS quota and per-CPU usage', async () => {
    expect(await cgroupCpuOf(700, r)).toEqual({ cpus: [0, 1], quotaCpus: 1.5, perCpuUser: [2, 1], perCpuSystem: [0.5, 0], userSeconds: 3, systemSeconds: 0.5 });
  });
  it('reads v2 cpu.max and cpu.stat, the cpu list from the init affinity when there is no cpuset', async () => {
    expect(await cgroupCpuOf(800, r)).toEqual({ cpus: [2, 3], quotaCpus: 0.5, userSeconds: 2, systemSeconds: 1 });
  });
  it('lists and samples the tasks (v1 pids tasks, v2 cgroup.threads)', async () => {
    expect(await cgroupTasksOf(700, r)).toEqual([700, 701, 702]);
    expect(await cgroupTasksOf(800, r)).toEqual([800]);
    expect(await sampleTasks([700, 701, 702], r)).toEqual({ total: 2, running: 1, blocked: 0, ctxt: 16, lastPid: 9 });
  });
  it('reads v1 blkio and v2 io.stat', async () => {
    expect((await cgroupIoOf(700, r)).get('8:0')).toEqual({ readIos: 2, writeIos: 1, readBytes: 8192, writeBytes: 4096, discardIos: 0, discardBytes: 0 });
    expect((await cgroupIoOf(800, r)).get('8:0')?.readBytes).toBe(512);
    expect((await cgroupIoOf(999, r)).size).toBe(0);
  });
  it('is empty (so the renderers fall back to container-scoped defaults) for a gone pid', async () => {
    expect(await cgroupCpuOf(999, r)).toEqual({});
    expect(await cgroupTasksOf(999, r)).toBeUndefined();
  });
});
