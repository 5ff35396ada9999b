// Per-container views of a non-namespaced sysctl through Docker, and the reconciler programming the
// host with the maximum over its baseline and the live containers — lowered again as they go.
// The host value is restored whatever happens.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerdAvailable, RUN_FLAGS, type Dockerd } from '../helpers/dockerd.ts';
import { startEciDocker, stopEciDocker } from '../helpers/eci-docker.ts';
import type { TestManager } from '../helpers/manager.ts';
import { replay } from '../helpers/events.ts';

const avail = dockerdAvailable();
const FILE = '/proc/sys/fs/file-max';
const host = () => Number(readFileSync(FILE, 'utf8'));
const CT = '/proc/sys/net/netfilter/nf_conntrack_max';
const hasConntrack = existsSync(CT); // nf_conntrack loaded (or built in); never loaded by the test
const ctHost = () => Number(readFileSync(CT, 'utf8'));
const until = async (f: () => boolean, ms = 5000) => { for (let t = 0; t < ms && !f(); t += 100) await new Promise((r) => setTimeout(r, 100)); };

describe.skipIf(!avail.ok)(`sysctl views and reconciliation through Docker${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let m: TestManager;
  let d: Dockerd;
  let img: string;
  let baseline: number;
  let ctBaseline: number | undefined;

  beforeAll(async () => {
    baseline = host();
    ctBaseline = hasConntrack ? ctHost() : undefined;
    ({ m, d, img } = await startEciDocker());
  });
  afterAll(async () => {
    await stopEciDocker({ m, d });
    if (baseline && host() !== baseline) writeFileSync(FILE, String(baseline));
    if (ctBaseline && ctHost() !== ctBaseline) writeFileSync(CT, String(ctBaseline));
  });

  it('gives each container its own fs.file-max; the host holds the max of the live ones and drops back', async () => {
    const start = (v: number) => d.docker(['run', '-d', ...RUN_FLAGS, '--runtime=eci', img, 'sh', '-c', `echo ${v} > ${FILE}; cat ${FILE}; sleep 300`]);
    const a = (await start(baseline + 1000)).stdout.trim();
    await until(() => host() === baseline + 1000);
    const b = (await start(baseline + 500)).stdout.trim();
    try {
      for (let i = 0; i < 50 && !(await d.docker(['logs', b])).stdout.trim(); i++) await new Promise((r) => setTimeout(r, 100));
      expect((await d.docker(['logs', a])).stdout.trim()).toBe(String(baseline + 1000));
      expect((await d.docker(['logs', b])).stdout.trim()).toBe(String(baseline + 500));
      expect(host()).toBe(baseline + 1000);
      await d.docker(['rm', '-f', a]);
      await until(() => host() === baseline + 500);
      expect(host()).toBe(baseline + 500);
    } finally {
      await d.docker(['rm', '-f', a, b]);
    }
    await until(() => host() === baseline);
    expect(host()).toBe(baseline);
    const ev = (await replay(m.natsUrl, 'eci.v1.evt.sysctl.>')).map((e) => e.event.data as unknown as { new: number; container: string });
    expect(ev.map((e) => e.new)).toEqual([baseline + 1000, baseline + 500, baseline]);
  });

  it.skipIf(!hasConntrack)('reconciles net.netfilter.nf_conntrack_max the same way (read-only 0444 in a container netns otherwise)', async () => {
    const base = ctHost();
    const start = (v: number) => d.docker(['run', '-d', ...RUN_FLAGS, '--runtime=eci', img, 'sh', '-c', `echo ${v} > ${CT}; cat ${CT}; sleep 300`]);
    const a = (await start(base + 4096)).stdout.trim();
    const b = (await start(base + 2048)).stdout.trim();
    try {
      for (let i = 0; i < 50 && !(await d.docker(['logs', b])).stdout.trim(); i++) await new Promise((r) => setTimeout(r, 100));
      await until(() => ctHost() === base + 4096);
      expect((await d.docker(['logs', a])).stdout.trim()).toBe(String(base + 4096));
      expect((await d.docker(['logs', b])).stdout.trim()).toBe(String(base + 2048));
      expect(ctHost()).toBe(base + 4096);
      await d.docker(['rm', '-f', a]);
      await until(() => ctHost() === base + 2048);
      expect(ctHost()).toBe(base + 2048);
    } finally {
      await d.docker(['rm', '-f', a, b]);
    }
    await until(() => ctHost() === base);
    expect(ctHost()).toBe(base);
  });

  it('takes a host value an admin changed meanwhile as the new baseline (no stale baseline comes back)', async () => {
    const start = (v: number) => d.docker(['run', '-d', ...RUN_FLAGS, '--runtime=eci', img, 'sh', '-c', `echo ${v} > ${FILE}; echo done; sleep 300`]);
    const a = (await start(baseline + 1000)).stdout.trim();
    let b = '';
    try {
      await until(() => host() === baseline + 1000);
      writeFileSync(FILE, String(baseline + 200)); // the admin
      b = (await start(baseline + 300)).stdout.trim();
      for (let i = 0; i < 50 && !(await d.docker(['logs', b])).stdout.trim(); i++) await new Promise((r) => setTimeout(r, 100));
      expect(host()).toBe(baseline + 200); // max(1000, 300) did not change: nothing written over the admin
      await d.docker(['rm', '-f', a]); // the next write (down to b's 300) finds the admin's value first
      await until(() => host() === baseline + 300);
      expect(host()).toBe(baseline + 300);
      await d.docker(['rm', '-f', b]);
      await until(() => host() === baseline + 200);
      expect(host()).toBe(baseline + 200); // the admin's value, not the stale baseline
      const ev = (await replay(m.natsUrl, 'eci.v1.evt.sysctl.*.baseline')).map((e) => e.event.data);
      expect(ev).toContainEqual({ key: 'fs.file-max', old: baseline, new: baseline + 200, container: 'host' });
    } finally {
      await d.docker(['rm', '-f', a, ...(b ? [b] : [])]);
      writeFileSync(FILE, String(baseline));
    }
  });

  it('concurrent kernel.panic readers with different values: each container, and a host reader, only ever see their own', async () => {
    // busybox cat copies with sendfile, through the page cache of the file's inode (direct_io or not):
    // each container's files come from its own view (inodes of its own), so no reader gets another's.
    const PANIC = '/proc/sys/kernel/panic';
    const reads = (v: number) => `echo ${v} > ${PANIC} || exit 3; n=0; while [ $n -lt 4 ]; do cat $(yes ${PANIC} | head -n 500); n=$((n+1)); done | sort | uniq -c`;
    const hostFile = join(m.env.ECI_RUN_DIR, 'sysctlfs', 'sys-kernel-panic');
    const hostValue = readFileSync(PANIC, 'utf8').trim();
    let hostDone = false;
    const hostReader = (async () => {
      const seen = new Map<string, number>();
      // Until both containers are done, and at least 20 rounds of 50 reads.
      for (let round = 0; !hostDone || round < 20; round++) {
        const r = spawnSync('busybox', ['cat', ...Array<string>(50).fill(hostFile)], { encoding: 'utf8', maxBuffer: 1 << 26 });
        for (const l of r.stdout.split('\n').filter(Boolean)) seen.set(l, (seen.get(l) ?? 0) + 1);
        await new Promise((res) => setImmediate(res));
      }
      return seen;
    })();
    const [a, b] = await Promise.all([
      d.docker(['run', '--rm', ...RUN_FLAGS, '--runtime=eci', img, 'sh', '-c', reads(17)]),
      d.docker(['run', '--rm', ...RUN_FLAGS, '--runtime=eci', img, 'sh', '-c', reads(23)]),
    ]).finally(() => (hostDone = true));
    const seen = await hostReader;
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(a.stdout.trim()).toMatch(/^2000 17$/);
    expect(b.stdout.trim()).toMatch(/^2000 23$/);
    expect([...seen.keys()]).toEqual([hostValue]);
    expect(seen.get(hostValue)).toBeGreaterThanOrEqual(1000);
    expect(readFileSync(PANIC, 'utf8').trim()).toBe(hostValue); // per container: the host never written
  });

  it('refuses out-of-range writes with EINVAL and reads the host value when untouched', async () => {
    const r = await d.docker(['run', '--rm', ...RUN_FLAGS, '--runtime=eci', img, 'sh', '-c', `echo abc > ${FILE}; echo -5 > ${FILE}; cat ${FILE}`]);
    expect(r.stderr).toMatch(/Invalid argument/);
    expect(r.stdout.trim()).toBe(String(host()));
  });
});

describe.skipIf(!avail.ok)(`what the kernel accepts, with the host under the admin's ceiling${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let m: TestManager;
  let d: Dockerd;
  let img: string;
  let baseline: number;
  let dir: string;
  const LONG_MAX = '9223372036854775807';

  beforeAll(async () => {
    baseline = host();
    dir = mkdtempSync('/tmp/eci-sysctl-ceiling-');
    writeFileSync(join(dir, 'settings.json'), JSON.stringify({ sysctlCeilings: { 'fs.file-max': baseline + 777 } }));
    ({ m, d, img } = await startEciDocker({ managerEnv: { ECI_SETTINGS: join(dir, 'settings.json') } }));
  });
  afterAll(async () => {
    await stopEciDocker({ m, d });
    if (baseline && host() !== baseline) writeFileSync(FILE, String(baseline));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('takes LONG_MAX for fs.file-max as systemd writes it and reads it back (issue 14)', async () => {
    const r = await d.docker(['run', '--rm', ...RUN_FLAGS, '--runtime=eci', img, 'sh', '-c', `echo ${LONG_MAX} > ${FILE} && cat ${FILE}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(LONG_MAX);
    expect(host()).toBeLessThanOrEqual(baseline + 777);
  });

  it('programs the host with the ceiling while such a container lives, and drops back after it', async () => {
    const a = (await d.docker(['run', '-d', ...RUN_FLAGS, '--runtime=eci', img, 'sh', '-c', `echo ${LONG_MAX} > ${FILE} && cat ${FILE}; sleep 300`])).stdout.trim();
    try {
      await until(() => host() === baseline + 777, 10000); // waited for: the reconciler's write of the ceiling
      expect(host()).toBe(baseline + 777);
      for (let i = 0; i < 50 && !(await d.docker(['logs', a])).stdout.trim(); i++) await new Promise((r) => setTimeout(r, 100));
      expect((await d.docker(['logs', a])).stdout.trim()).toBe(LONG_MAX);
      // Another container still sees the host's (ceiled) value, not the first one's.
      const b = await d.docker(['run', '--rm', ...RUN_FLAGS, '--runtime=eci', img, 'cat', FILE]);
      expect(b.stdout.trim()).toBe(String(baseline + 777));
    } finally {
      await d.docker(['rm', '-f', a]);
    }
    await until(() => host() === baseline, 10000); // waited for: the host lowered once the container is gone
    expect(host()).toBe(baseline);
  });
});
