// /proc/sys and /sys emulation through Docker: the per-container entries of the reference (each
// container its own value, the host untouched), range checks (EINVAL), read-only entries (EACCES),
// the container's own hostname, its own /sys, the same files on proc and sysfs mounts made inside,
// and emulated files that cannot be unmounted. Host files are checked unchanged at the end.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerdAvailable, RUN_FLAGS, type Dockerd } from '../helpers/dockerd.ts';
import { startEciDocker, stopEciDocker } from '../helpers/eci-docker.ts';
import type { TestManager } from '../helpers/manager.ts';

const avail = dockerdAvailable();
const HL = '/proc/sys/fs/protected_hardlinks';
const PRINTK = '/proc/sys/kernel/printk';
const OVERCOMMIT = '/proc/sys/vm/overcommit_memory';
const HASHSIZE = '/sys/module/nf_conntrack/parameters/hashsize';
const WATCHED = [HL, PRINTK, OVERCOMMIT, '/proc/sys/kernel/dmesg_restrict', '/proc/sys/kernel/hostname', HASHSIZE];
const snapshot = () => Object.fromEntries(WATCHED.map((p) => [p, (() => { try { return readFileSync(p, 'utf8'); } catch { return null; } })()]));
const hasHashsize = (() => { try { readFileSync(HASHSIZE); return true; } catch { return false; } })();

describe.skipIf(!avail.ok)(`/proc/sys and /sys emulation through Docker${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let m: TestManager;
  let d: Dockerd;
  let img: string;
  let before: Record<string, string | null>;
  const run = (...args: string[]) => d.docker(['run', '--rm', ...RUN_FLAGS, '--runtime=eci', ...args]);

  beforeAll(async () => {
    before = snapshot();
    ({ m, d, img } = await startEciDocker());
  });
  const holders = new Set<number>();
  afterAll(async () => {
    await stopEciDocker({ m, d });
    for (const pid of holders) { try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ } }
    // No per-container entry is ever written to the host.
    expect(snapshot()).toEqual(before);
  });

  it('gives each container its own per-container values; the host keeps its own', async () => {
    const writes = `echo 0 > ${HL}; echo '7 4 1 7' > ${PRINTK}; echo 2 > ${OVERCOMMIT}${hasHashsize ? `; echo 16384 > ${HASHSIZE}` : ''}`;
    const a = (await d.docker(['run', '-d', ...RUN_FLAGS, '--runtime=eci', img, 'sh', '-c', `${writes}; echo written; sleep 300`])).stdout.trim();
    try {
      for (let i = 0; i < 100 && !(await d.docker(['logs', a])).stdout.includes('written'); i++) await new Promise((r) => setTimeout(r, 100));
      const reads = `cat ${HL} ${PRINTK} ${OVERCOMMIT}${hasHashsize ? ` ${HASHSIZE}` : ''}`;
      const inA = await d.docker(['exec', a, 'sh', '-c', reads]);
      expect(inA.code, inA.stderr).toBe(0);
      expect(inA.stdout.split('\n').slice(0, 3)).toEqual(['0', '7\t4\t1\t7', '2']);
      if (hasHashsize) expect(inA.stdout.split('\n')[3]).toBe('16384');
      const inB = await run(img, 'sh', '-c', reads);
      expect(inB.code, inB.stderr).toBe(0);
      const host = [HL, PRINTK, OVERCOMMIT, ...(hasHashsize ? [HASHSIZE] : [])].map((p) => readFileSync(p, 'utf8')).join('');
      expect(inB.stdout.trim()).toBe(host.trim());
      expect(readFileSync(HL, 'utf8')).toBe(before[HL]);
    } finally {
      await d.docker(['rm', '-f', a]);
    }
  });

  it('refuses out-of-range values with EINVAL, keeping the old value', async () => {
    const r = await run(img, 'sh', '-c', [
      `echo 2 > ${HL}`, 'echo 3 > /proc/sys/kernel/kptr_restrict', `echo abc > ${OVERCOMMIT}`, "echo '1 2 3 4 5' > " + PRINTK,
      ...(hasHashsize ? [`echo 0 > ${HASHSIZE}`] : []), `cat ${HL}`,
    ].join('; '));
    expect(r.stderr.match(/Invalid argument/g)?.length).toBe(hasHashsize ? 5 : 4);
    expect(r.stdout).toBe(readFileSync(HL, 'utf8'));
  });

  it('refuses writes to read-only entries with EACCES, and per-container entries to non-root', async () => {
    const r = await run(img, 'sh', '-c', 'for f in kernel/cap_last_cap kernel/ngroups_max kernel/random/uuid; do echo 1 > /proc/sys/$f; done');
    expect(r.stderr.match(/Permission denied/g)?.length, r.stderr).toBe(3);
    const u = await run('--user', '1000', img, 'sh', '-c', `echo 0 > ${HL}; cat ${HL}`);
    expect(u.stderr).toMatch(/Permission denied/);
    expect(u.stdout).toBe(readFileSync(HL, 'utf8'));
  });

  it("never shows the host's hostname or domainname: /proc/sys/kernel shows the container's", async () => {
    const r = await run('--hostname', 'eci-box', '--domainname', 'eci.test', img, 'sh', '-c', 'cat /proc/sys/kernel/hostname /proc/sys/kernel/domainname');
    expect(r.stdout.trim(), r.stderr).toBe('eci-box\neci.test');
    const id = await run(img, 'cat', '/proc/sys/kernel/hostname');
    expect(id.stdout.trim()).toMatch(/^[0-9a-f]{12}$/);
    expect(id.stdout.trim()).not.toBe(hostname());
    // sethostname(2) inside (SYS_ADMIN over its own UTS namespace) shows in the file; the host keeps its name.
    const s = await run('--cap-add', 'SYS_ADMIN', img, 'sh', '-c', 'hostname renamed && cat /proc/sys/kernel/hostname');
    expect(s.stdout).toBe('renamed\n');
    expect(hostname()).toBe(before['/proc/sys/kernel/hostname']!.trim());
  });

  it("shows the container's own /sys: its network devices, empty debug/tracing/config dirs", async () => {
    const r = await run(img, 'sh', '-c', 'ls /sys/class/net; echo --; ls /sys/devices/virtual/net; echo --; ls -A /sys/kernel/debug /sys/kernel/tracing /sys/kernel/config | grep -v :$ | grep -c . ');
    const [cls, virt, inKernel] = r.stdout.split('--\n');
    expect(cls.trim().split(/\s+/)).toEqual(['lo']); // --network none; the host has eth0, ifb0, ...
    expect(readdirSync('/sys/class/net').length).toBeGreaterThan(1);
    expect(virt.trim().split(/\s+/)).toEqual(['lo']);
    expect(inKernel.trim()).toBe('0');
  });

  it.skipIf(!hasHashsize)('serves /sys/module/nf_conntrack/parameters/hashsize and expect_hashsize to container root (the kernel files are 0600/0400 host root)', async () => {
    const dir = '/sys/module/nf_conntrack/parameters';
    const r = await run(img, 'sh', '-c', `cat ${HASHSIZE} ${dir}/expect_hashsize; echo 1 > ${dir}/expect_hashsize; echo 1 > ${dir}/acct`);
    expect(r.stdout.trim().split('\n')).toEqual([readFileSync(HASHSIZE, 'utf8').trim(), readFileSync(`${dir}/expect_hashsize`, 'utf8').trim()]);
    // expect_hashsize is read-only; acct stays the kernel's file (host root's, read-only /sys)
    expect(r.stderr).toMatch(/expect_hashsize: Permission denied/);
    expect(r.stderr).toMatch(/acct: (Read-only file system|Permission denied)/);
  });

  it('a proc or sysfs filesystem mounted inside gets the same emulated files', async () => {
    const r = await run('--cap-add', 'SYS_ADMIN', img, 'sh', '-c', [
      `echo 0 > ${HL}`, ...(hasHashsize ? [`echo 4096 > ${HASHSIZE}`] : []),
      'mkdir -p /tmp/p /tmp/s', 'mount -t proc proc /tmp/p', 'mount -t sysfs -o ro sysfs /tmp/s',
      'cat /tmp/p/sys/fs/protected_hardlinks', ...(hasHashsize ? ['cat /tmp/s/module/nf_conntrack/parameters/hashsize'] : []),
      'echo 1 > /tmp/p/sys/fs/protected_hardlinks', `cat ${HL}`, 'ls /tmp/s/class/net',
    ].join(' && '));
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.slice(0, hasHashsize ? 3 : 2)).toEqual(hasHashsize ? ['0', '4096', '1'] : ['0', '1']);
    expect(lines.slice(hasHashsize ? 3 : 2)).toEqual(['lo']);
  });

  it("binds a container's files from its own view (own inodes), also on a proc mount made inside", async () => {
    // mountinfo's 4th field is the bound file's path inside the FUSE server: /ctr-<id>/<file>, not /<file>
    // (a top-level inode is shared by every reader, and sendfile reads through its page cache).
    const r = await run('--cap-add', 'SYS_ADMIN', img, 'sh', '-c', [
      'mkdir -p /tmp/p', 'mount -t proc proc /tmp/p',
      `grep -E ' (${HL}|/tmp/p/sys/fs/protected_hardlinks) ' /proc/self/mountinfo | cut -d' ' -f4`,
    ].join(' && '));
    expect(r.code, r.stderr).toBe(0);
    const roots = r.stdout.trim().split('\n');
    expect(roots.length, r.stdout).toBeGreaterThanOrEqual(2);
    for (const root of roots) expect(root).toMatch(/^\/ctr-[0-9a-f]{64}\/sys-fs-protected-hardlinks$/);
    expect(new Set(roots).size).toBe(1);
  });

  it('gives a running container its emulated files and values back after a kill -9 of the manager', async () => {
    const id = (await d.docker(['run', '-d', ...RUN_FLAGS, '--runtime=eci', img, 'sleep', '300'])).stdout.trim();
    const holder = join(m.dir, 'run', 'fdholder.pid');
    try {
      const before = await d.docker(['exec', id, 'sh', '-c', `echo 0 > ${HL} && cat ${HL}`]);
      expect(before.stdout.trim(), before.stderr).toBe('0');
      if (existsSync(holder)) holders.add(Number(readFileSync(holder, 'utf8')));
      await m.kill9();
      await m.restart();
      const targets = [HL, PRINTK, '/proc/sys/net/netfilter/nf_conntrack_max', ...(hasHashsize ? [HASHSIZE] : [])].filter((p) => existsSync(p));
      const after = await d.docker(['exec', id, 'sh', '-c', `cat ${targets.join(' ')} && echo 1 > ${HL} && cat ${HL}`]);
      expect(after.stderr).not.toMatch(/not connected/i);
      expect(after.code, after.stderr).toBe(0);
      const lines = after.stdout.trim().split('\n');
      expect(lines.length).toBe(targets.length + 1);
      expect(lines[0]).toBe('0'); // the value it set before the restart (kept in KV)
      expect(lines.at(-1)).toBe('1');
      // put back from the container's own view of the new server
      const mi = await d.docker(['exec', id, 'sh', '-c', `grep ' ${HL} ' /proc/self/mountinfo | cut -d' ' -f4`]);
      expect(mi.stdout.trim().split('\n').at(-1)).toBe(`/ctr-${id}/sys-fs-protected-hardlinks`);
    } finally {
      await d.docker(['rm', '-f', id]);
    }
  });

  it('refuses to unmount an emulated /proc/sys or /sys file from inside', async () => {
    const targets = [HL, ...(hasHashsize ? [HASHSIZE] : [])];
    const r = await run('--cap-add', 'SYS_ADMIN', img, 'sh', '-c', `for t in ${targets.join(' ')}; do umount $t; echo rc=$?; done; echo 0 > ${HL}; cat ${HL}`);
    expect(r.stdout.match(/rc=1/g)?.length).toBe(targets.length);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('0'); // still the emulated file (the kernel's refuses the write)
  });
});
