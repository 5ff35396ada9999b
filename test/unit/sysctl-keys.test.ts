// The emulated /proc/sys and /sys table (actors/sysctl/keys.ts): every entry's write rule, and the
// per-container SysctlFs logic against a fake /proc tree (pid namespaces, uid maps) and fake host files.
import { linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ceilingOf, DEFAULT_SYSCTL_CEILINGS, ENTRIES, parseReconciled, RECONCILED, keyByName, keyByFile, productUuid, validateText, type SysctlKey } from '../../actors/sysctl/keys.ts';
import { servedEntries, SysctlFs, type SysctlClient } from '../../actors/sysctl/fs.ts';
import { memKv } from '../helpers/mem-kv.ts';
import { mountRwFs, rwFsMock } from '../../native/mock.ts';

const k = (name: string): SysctlKey => {
  const e = keyByName(name);
  if (!e) throw new Error(`no entry ${name}`);
  return e;
};
const einval = expect.objectContaining({ code: 'EINVAL' });

// [entry, scope, accepted writes -> what the file then reads, refused writes]
const RULES: [string, SysctlKey['scope'], [string, string][], string[]][] = [
  // The kernel takes 0..LONG_MAX (issue 14: systemd writes LONG_MAX; 2^53 was refused before).
  ['fs.file-max', 'host-max', [['0', '0\n'], ['9007199254740991', '9007199254740991\n'], ['9007199254740992', '9007199254740992\n'], ['9223372036854775807', '9223372036854775807\n']], ['-1', '9223372036854775808', 'x']],
  ['fs.nr_open', 'host-max', [['64', '64\n'], ['2147483584', '2147483584\n']], ['63', '2147483585']],
  ['net.netfilter.nf_conntrack_max', 'host-max', [['0', '0\n'], ['2147483647', '2147483647\n']], ['2147483648', '-1']],
  ['fs.protected_hardlinks', 'container', [['0', '0\n'], ['1\n', '1\n']], ['2', '-1', 'yes']],
  ['fs.protected_symlinks', 'container', [['1', '1\n']], ['2']],
  ['kernel.panic', 'container', [['-1', '-1\n'], ['30', '30\n'], ['2147483647', '2147483647\n']], ['2147483648', '1 2']],
  ['kernel.panic_on_oops', 'container', [['1', '1\n'], ['-2147483648', '-2147483648\n']], ['-2147483649']],
  ['kernel.printk', 'container', [['4 4 1 7', '4\t4\t1\t7\n'], ['3', '3\n'], [' 7\t4 1 \n', '7\t4\t1\n']], ['', '1 2 3 4 5', '1 x']],
  ['kernel.sysrq', 'container', [['0', '0\n'], ['511', '511\n']], ['512', '-1']],
  ['kernel.kptr_restrict', 'container', [['2', '2\n']], ['3', '-1']],
  ['kernel.dmesg_restrict', 'container', [['0', '0\n']], ['2']],
  ['kernel.yama.ptrace_scope', 'container', [['3', '3\n']], ['4']],
  ['vm.overcommit_memory', 'container', [['2', '2\n']], ['3']],
  ['vm.mmap_min_addr', 'container', [['65536', '65536\n'], ['9223372036854775807', '9223372036854775807\n']], ['9223372036854775808', '-1']],
  ['kernel.cap_last_cap', 'readonly', [], ['40']],
  ['kernel.ngroups_max', 'readonly', [], ['65536']],
  ['kernel.random.uuid', 'readonly', [], ['x']],
  ['/sys/devices/virtual/dmi/id/product_uuid', 'uuid', [], ['x']],
  ['/sys/module/nf_conntrack/parameters/expect_hashsize', 'readonly', [], ['1']],
  ['/sys/module/nf_conntrack/parameters/hashsize', 'container', [['1', '1\n'], ['16384', '16384\n'], ['536870911', '536870911\n']], ['0', '536870912']],
];

describe('the emulated entry table', () => {
  it('lists exactly the reference entries this kernel does not namespace, with unique files and targets', () => {
    expect(ENTRIES.map((e) => e.key).sort()).toEqual(RULES.map((r) => r[0]).sort());
    expect(new Set(ENTRIES.map((e) => e.file)).size).toBe(ENTRIES.length);
    expect(new Set(ENTRIES.map((e) => e.target)).size).toBe(ENTRIES.length);
    expect(RECONCILED.map((e) => e.key)).toEqual(['fs.file-max', 'fs.nr_open', 'net.netfilter.nf_conntrack_max']);
    expect(k('kernel.yama.ptrace_scope')).toMatchObject({ target: '/proc/sys/kernel/yama/ptrace_scope', file: 'sys-kernel-yama-ptrace-scope', path: 'kernel/yama/ptrace_scope' });
    expect(k('/sys/module/nf_conntrack/parameters/hashsize')).toMatchObject({ target: '/sys/module/nf_conntrack/parameters/hashsize', file: 'sysfs-module-nf-conntrack-parameters-hashsize' });
    expect(keyByFile('sys-fs-nr-open')?.key).toBe('fs.nr_open');
    // Namespaced on 6.18 (or read-only in the kernel): no entry, the kernel's own file serves.
    for (const n of ['kernel.hostname', 'kernel.domainname', 'kernel.pid_max', 'kernel.shmmax', 'net.core.somaxconn', 'net.unix.max_dgram_qlen', 'net.ipv4.ping_group_range'])
      expect(keyByName(n)).toBeUndefined();
  });

  it.each(RULES)('%s (%s)', (name, scope, ok, bad) => {
    const e = k(name);
    expect(e.scope).toBe(scope);
    for (const [text, reads] of ok) expect(validateText(e, text)).toBe(reads);
    for (const text of bad) expect(() => validateText(e, text)).toThrow(scope === 'readonly' || scope === 'uuid' ? expect.objectContaining({ code: 'EACCES' }) : einval);
  });

  it.each(['0x10', '1.5', '+1', '1e3', '--1', '99999999999999999999999'])('refuses %j everywhere', (t) => {
    for (const e of ENTRIES) expect(() => validateText(e, t)).toThrow(expect.objectContaining({ code: e.scope === 'readonly' || e.scope === 'uuid' ? 'EACCES' : 'EINVAL' }));
  });

  it('parses reconciled writes in the kernel range, the host number at most the entry max', () => {
    expect(parseReconciled(k('fs.file-max'), ' 9223372036854775807\n')).toEqual({ text: '9223372036854775807\n', value: Number.MAX_SAFE_INTEGER });
    expect(parseReconciled(k('fs.nr_open'), '2147483584')).toEqual({ text: '2147483584\n', value: 2147483584 });
    for (const [name, t] of [['fs.nr_open', '2147483585'], ['fs.file-max', '9223372036854775808'], ['fs.file-max', '-1'], ['net.netfilter.nf_conntrack_max', '2147483648']] as const)
      expect(() => parseReconciled(k(name), t), `${name} ${t}`).toThrow(einval);
  });

  it('bounds the host by a ceiling per reconciled entry: the admin\'s, else the default', () => {
    for (const e of RECONCILED) expect(DEFAULT_SYSCTL_CEILINGS[e.key], e.key).toBeLessThanOrEqual(e.max);
    expect(ceilingOf(k('fs.file-max'))).toBe(DEFAULT_SYSCTL_CEILINGS['fs.file-max']);
    expect(ceilingOf(k('fs.file-max'), { 'fs.file-max': 5000 })).toBe(5000);
    expect(ceilingOf(k('fs.nr_open'), { 'fs.file-max': 5000 })).toBe(DEFAULT_SYSCTL_CEILINGS['fs.nr_open']);
  });

  it('derives a per-container product_uuid from the host one (all zeros without one)', () => {
    expect(productUuid('4c4c4544-0042-3510-8048-b7c04f4b5a31\n', 'f3b8fcb260045eeabf53b116')).toBe('4c4c4544-0042-3510-8048-f3b8fcb26004\n');
    expect(productUuid(undefined, 'abc')).toBe('00000000-0000-0000-0000-abc000000000\n');
    expect(productUuid('garbage', 'f3b8fcb260045eea')).toBe('00000000-0000-0000-0000-f3b8fcb26004\n');
  });

  it('serves the reconciled entries present on the host and the per-container entries that exist', () => {
    const present = new Set(['/proc/sys/fs/protected_hardlinks', '/sys/module/nf_conntrack/parameters/hashsize']);
    const served = servedEntries([k('fs.file-max')], ENTRIES, (p) => present.has(p));
    expect(served.map((e) => e.key)).toEqual(['fs.file-max', 'fs.protected_hardlinks', '/sys/module/nf_conntrack/parameters/hashsize']);
  });
});

describe('SysctlFs per-container values', () => {
  let dir: string;
  let fs: SysctlFs;
  const sets: [string, string, number][] = [];
  const client: SysctlClient = {
    async set(c, key, v) { sets.push([c, key, v]); return { ok: true }; },
    valueOf(c, key) { return sets.filter((s) => s[0] === c && s[1] === key).at(-1)?.[2]; },
  };
  // Fake /proc: container a = pids 100 (init) and 101 (root inside), 102 (uid 1000 inside);
  // container b = pid 200 (init) and 201; pid 300 is a host process.
  const proc = (p: string) => join(dir, 'proc', p);
  const put = (path: string, text: string) => { mkdirSync(dirname(path), { recursive: true }); writeFileSync(path, text); };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eci-sysctl-keys-'));
    for (const [pid, ns, base] of [[100, 'A', 100000], [200, 'B', 165536], [300, 'H', 0]] as const) {
      put(join(dir, 'ns', ns), '');
      for (const p of [pid, pid + 1, pid + 2]) {
        mkdirSync(proc(`${p}/ns`), { recursive: true });
        linkSync(join(dir, 'ns', ns), proc(`${p}/ns/pid`));
        put(proc(`${p}/uid_map`), base ? `         0     ${base}      65536\n` : '         0          0 4294967295\n');
      }
    }
    put(join(dir, 'procsys/fs/protected_hardlinks'), '1\n');
    put(join(dir, 'procsys/kernel/printk'), '4\t4\t1\t7\n');
    put(join(dir, 'procsys/fs/file-max'), '2466170\n');
    put(join(dir, 'sys/module/nf_conntrack/parameters/hashsize'), '262144\n');
    const keys = [k('fs.file-max'), k('fs.protected_hardlinks'), k('kernel.printk'), k('/sys/module/nf_conntrack/parameters/hashsize')];
    fs = new SysctlFs({ client, keys, roots: { proc: join(dir, 'proc') }, procSys: join(dir, 'procsys'), sys: join(dir, 'sys'), mount: () => ({ close: async () => {} }) });
    await fs.start('/unused');
    fs.register('a', 100);
    fs.register('b', 200);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const f = (name: string) => k(name).file;

  it('reads the host value until the container writes, then its own; each container apart', async () => {
    expect(await fs.read(f('fs.protected_hardlinks'), 101)).toBe('1\n');
    await fs.write(f('fs.protected_hardlinks'), 101, 100000, '0\n');
    expect(await fs.read(f('fs.protected_hardlinks'), 100)).toBe('0\n');
    expect(await fs.read(f('fs.protected_hardlinks'), 201)).toBe('1\n');
    await fs.write(f('/sys/module/nf_conntrack/parameters/hashsize'), 201, 165536, '16384');
    expect(await fs.read(f('/sys/module/nf_conntrack/parameters/hashsize'), 200)).toBe('16384\n');
    expect(await fs.read(f('/sys/module/nf_conntrack/parameters/hashsize'), 101)).toBe('262144\n');
    await fs.write(f('kernel.printk'), 200, 165536, '7 4 1 7\n');
    expect(await fs.read(f('kernel.printk'), 201)).toBe('7\t4\t1\t7\n');
    // The host files were never written.
    expect(readFileSync(join(dir, 'procsys/fs/protected_hardlinks'), 'utf8')).toBe('1\n');
    expect(readFileSync(join(dir, 'sys/module/nf_conntrack/parameters/hashsize'), 'utf8')).toBe('262144\n');
    expect(sets).toEqual([]);
  });

  it('sends host-max writes to the reconciler and reads them back', async () => {
    await fs.write(f('fs.file-max'), 101, 100000, '3000000\n');
    expect(sets).toEqual([['a', 'fs.file-max', 3000000]]);
    expect(await fs.read(f('fs.file-max'), 100)).toBe('3000000\n');
    expect(await fs.read(f('fs.file-max'), 200)).toBe('2466170\n');
  });

  it('accepts what the kernel accepts for a host-max entry and reads it back as written; the reconciler gets a safe number', async () => {
    await fs.write(f('fs.file-max'), 201, 165536, '9223372036854775807\n');
    expect(sets.at(-1)).toEqual(['b', 'fs.file-max', Number.MAX_SAFE_INTEGER]);
    expect(await fs.read(f('fs.file-max'), 200)).toBe('9223372036854775807\n');
    expect(await fs.read(f('fs.file-max'), 100)).toBe('3000000\n');
    await expect(fs.write(f('fs.file-max'), 201, 165536, '9223372036854775808')).rejects.toMatchObject({ code: 'EINVAL' });
    expect(await fs.read(f('fs.file-max'), 200)).toBe('9223372036854775807\n');
  });

  it('refuses out-of-range values (EINVAL) and non-root writers (EACCES), keeping the old value', async () => {
    await expect(fs.write(f('fs.protected_hardlinks'), 101, 100000, '2')).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(fs.write(f('fs.protected_hardlinks'), 102, 101000, '1')).rejects.toMatchObject({ code: 'EACCES' });
    await expect(fs.write(f('fs.file-max'), 102, 101000, '5')).rejects.toMatchObject({ code: 'EACCES' });
    expect(await fs.read(f('fs.protected_hardlinks'), 100)).toBe('0\n');
  });

  it('forgets a container\'s values when it is unregistered', async () => {
    fs.unregister('a');
    fs.register('a', 100);
    expect(await fs.read(f('fs.protected_hardlinks'), 101)).toBe('1\n');
  });

  it('serves read-only entries afresh from the host and refuses every write with EACCES', async () => {
    const ro = new SysctlFs({ client, keys: [k('kernel.random.uuid')], roots: { proc: join(dir, 'proc') }, procSys: join(dir, 'procsys'), mount: (o) => { expect(o.writable).toEqual([]); return { close: async () => {} }; } });
    await ro.start('/unused');
    ro.register('a', 100);
    put(join(dir, 'procsys/kernel/random/uuid'), 'u1\n');
    expect(await ro.read(f('kernel.random.uuid'), 101)).toBe('u1\n');
    put(join(dir, 'procsys/kernel/random/uuid'), 'u2\n');
    expect(await ro.read(f('kernel.random.uuid'), 101)).toBe('u2\n');
    await expect(ro.write(f('kernel.random.uuid'), 101, 100000, 'x')).rejects.toMatchObject({ code: 'EACCES' });
    await expect(ro.write(f('kernel.random.uuid'), 301, 0, 'x')).rejects.toMatchObject({ code: 'EACCES' });
  });

  it('shows each container its own product_uuid, the host its own, and refuses writes', async () => {
    put(join(dir, 'sys/devices/virtual/dmi/id/product_uuid'), '4c4c4544-0042-3510-8048-b7c04f4b5a31\n');
    const u = new SysctlFs({ client, keys: [k('/sys/devices/virtual/dmi/id/product_uuid')], roots: { proc: join(dir, 'proc') }, sys: join(dir, 'sys'), mount: (o) => { expect(o.writable).toEqual([]); return { close: async () => {} }; } });
    await u.start('/unused');
    u.register('aaaaaaaaaaaa01', 100);
    u.register('bbbbbbbbbbbb01', 200);
    const file = f('/sys/devices/virtual/dmi/id/product_uuid');
    expect(await u.read(file, 101)).toBe('4c4c4544-0042-3510-8048-aaaaaaaaaaaa\n');
    expect(await u.read(file, 201)).toBe('4c4c4544-0042-3510-8048-bbbbbbbbbbbb\n');
    expect(await u.read(file, 301)).toBe('4c4c4544-0042-3510-8048-b7c04f4b5a31\n');
    await expect(u.write(file, 101, 100000, 'x')).rejects.toMatchObject({ code: 'EACCES' });
  });

  it('keeps per-container values in KV across a restart, dropping those of containers gone meanwhile', async () => {
    const kv = memKv();
    const mk = () => new SysctlFs({ client, kv, keys: [k('fs.protected_hardlinks'), k('kernel.printk')], roots: { proc: join(dir, 'proc') }, procSys: join(dir, 'procsys'), mount: () => ({ close: async () => {} }) });
    const one = mk();
    await one.start('/unused');
    one.register('a', 100);
    one.register('b', 200);
    await one.write(f('fs.protected_hardlinks'), 101, 100000, '0');
    await one.write(f('kernel.printk'), 101, 100000, '3 4 1 7');
    await one.write(f('fs.protected_hardlinks'), 201, 165536, '0');
    await one.stop(); // the manager dies; the records stay
    const two = mk();
    await two.start('/unused');
    await two.restore(['a']); // b is gone
    two.register('a', 100);
    two.register('b', 200);
    expect(await two.read(f('fs.protected_hardlinks'), 101)).toBe('0\n');
    expect(await two.read(f('kernel.printk'), 101)).toBe('3\t4\t1\t7\n');
    expect(await two.read(f('fs.protected_hardlinks'), 201)).toBe('1\n');
    expect(await kv.get('local.b')).toBeNull();
    two.unregister('a');
    await new Promise((r) => setImmediate(r));
    expect(await kv.get('local.a')).toBeNull();
  });

  it('serves each container a view of its own: its values whoever reads or writes (writer still judged), gone with it', async () => {
    // The views are what containers' files are bound from: own inodes, so the page cache never mixes
    // readers (splice/sendfile). The mock plays the FUSE server's directories.
    const v = new SysctlFs({ client, keys: [k('fs.protected_hardlinks'), k('fs.file-max')], roots: { proc: join(dir, 'proc') }, procSys: join(dir, 'procsys'), mount: mountRwFs });
    await v.start('/views');
    try {
      const da = v.viewDir('c')!; // at create, before the init registers
      expect(da).toBe('/views/ctr-c');
      const file = f('fs.protected_hardlinks');
      expect(await rwFsMock.read(da, file, 301)).toBe('1\n');
      await rwFsMock.write(da, file, 301, 0, '0'); // host root through c's view: c's value, not the host's
      v.register('c', 100);
      v.register('d', 200);
      const db = v.viewDir('d')!;
      expect(await rwFsMock.read(da, file, 301)).toBe('0\n');
      expect(await rwFsMock.read(da, file, 201)).toBe('0\n'); // d's process reading c's view sees c's
      expect(await rwFsMock.read(db, file, 101)).toBe('1\n');
      expect(await rwFsMock.read('/views', file, 101)).toBe('0\n'); // top level: the caller's container
      expect(await rwFsMock.read('/views', file, 301)).toBe('1\n');
      await expect(rwFsMock.write(db, file, 102, 101000, '0')).rejects.toMatchObject({ code: 'EACCES' });
      await expect(rwFsMock.write(db, file, 301, 1000, '0')).rejects.toMatchObject({ code: 'EACCES' });
      await rwFsMock.write(db, f('fs.file-max'), 101, 100000, '3100000\n');
      expect(sets.at(-1)).toEqual(['d', 'fs.file-max', 3100000]);
      expect(await rwFsMock.read(db, f('fs.file-max'), 301)).toBe('3100000\n');
      expect(readFileSync(join(dir, 'procsys/fs/protected_hardlinks'), 'utf8')).toBe('1\n');
      v.unregister('c');
      await expect(rwFsMock.read(da, file, 301)).rejects.toMatchObject({ code: 'ENOENT' });
      await expect(v.read(file, 301, 'ctr-c')).rejects.toMatchObject({ code: 'ENOENT' });
      expect(() => v.viewDir('a/b')).toThrow(/not a plain name/);
    } finally {
      await v.stop();
    }
  });

  it('lets host processes read and (as root) write the host file', async () => {
    expect(await fs.read(f('kernel.printk'), 301)).toBe('4\t4\t1\t7\n');
    await expect(fs.write(f('kernel.printk'), 301, 1000, '1')).rejects.toMatchObject({ code: 'EACCES' });
    await fs.write(f('kernel.printk'), 301, 0, '5 4 1 7\n');
    expect(readFileSync(join(dir, 'procsys/kernel/printk'), 'utf8')).toBe('5 4 1 7\n');
  });
});
