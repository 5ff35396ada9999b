import { describe, expect, it } from 'vitest';
import { decide, MOUNT_ATTR, MS, type VetRequest, type Verdict } from '../../actors/vetter/decide.ts';
import { Pacer } from '../../actors/vetter/pace.ts';
import { RATE_BURST, VetterActor } from '../../actors/vetter.actor.ts';
import { addNotifyRules, MOUNT_FAMILY } from '../../actors/runc/seccomp.ts';

const req = (syscall: string, args: bigint[], strings: Record<string, string | null> = {}, extra: Partial<VetRequest> = {}): VetRequest =>
  ({ container: 'c', pid: 1, syscall, args, strings, ...extra });

describe('vetter decisions', () => {
  it('performs every mount(2) itself, never CONTINUE', () => {
    const cases: [bigint, string][] = [
      [0n, 'new tmpfs mount'], [MS.REMOUNT | MS.BIND, 'remount (refused there'], [MS.REMOUNT | MS.RDONLY, 'remount read-only'],
      [MS.MOVE, 'move'], [MS.BIND | MS.REC, 'bind'], [MS.PRIVATE | MS.REC, 'propagation'],
    ];
    for (const [flags, reason] of cases) {
      const v = decide(req('mount', [0n, 0n, 0n, flags], { source: 'tmpfs', target: '/mnt', fstype: 'tmpfs', data: null }));
      expect(v.kind).toBe('perform');
      expect(v.reason).toContain(reason);
      if (v.kind === 'perform') expect(v.perform).toMatchObject({ op: 'mount', target: '/mnt', flags });
    }
    expect(decide(req('umount2', [0n, 2n], { target: '/mnt' }))).toMatchObject({ kind: 'perform', perform: { op: 'umount', target: '/mnt', flags: 2n } });
  });
  it('refuses when the arguments cannot be read (fail closed)', () => {
    expect(decide(req('mount', [0n, 0n, 0n, 0n], { target: null }))).toMatchObject({ kind: 'errno', code: 'EPERM' });
    expect(decide(req('umount2', [0n, 0n], { target: null }))).toMatchObject({ kind: 'errno' });
    expect(decide(req('mount_setattr', [0n, 0n, 0n, 0n, 32n], { path: '/v' }))).toMatchObject({ kind: 'errno' });
    expect(decide(req('reboot', []))).toMatchObject({ kind: 'errno', code: 'EPERM' });
  });
  it('never lets mount_setattr loosen a mount', () => {
    const attr = (attrSet: bigint, attrClr: bigint) => ({ attrSet, attrClr, propagation: 0n, usernsFd: 0n });
    expect(decide(req('mount_setattr', [], { path: '/v' }, { mountAttr: attr(0n, MOUNT_ATTR.RDONLY) }))).toMatchObject({ kind: 'errno', errno: 1 });
    expect(decide(req('mount_setattr', [], { path: '/v' }, { mountAttr: attr(0n, MOUNT_ATTR.NOSUID) }))).toMatchObject({ kind: 'errno' });
    expect(decide(req('mount_setattr', [], { path: '/v' }, { mountAttr: attr(MOUNT_ATTR.IDMAP, 0n) }))).toMatchObject({ kind: 'errno' });
    expect(decide(req('mount_setattr', [], { path: '/v' }, { mountAttr: attr(MOUNT_ATTR.RDONLY, 0n) }))).toMatchObject({ kind: 'continue' });
  });
  it('allows only clone-based new-API paths', () => {
    expect(decide(req('open_tree', [0n, 0n, 1n]))).toMatchObject({ kind: 'continue' });
    expect(decide(req('open_tree', [0n, 0n, 0n]))).toMatchObject({ kind: 'errno' });
    expect(decide(req('move_mount', [3n, 0n, 0n, 0n, 4n], { from_path: '', to_path: '/x' }))).toMatchObject({ kind: 'continue' });
    expect(decide(req('move_mount', [-100n, 0n, -100n, 0n, 0n], { from_path: '/v', to_path: '/x' }))).toMatchObject({ kind: 'errno' });
    expect(decide(req('fspick', []))).toMatchObject({ kind: 'errno' });
    expect(decide(req('fsconfig', [3n, 7n]))).toMatchObject({ kind: 'errno' });
    expect(decide(req('fsconfig', [3n, 1n]))).toMatchObject({ kind: 'continue' });
    expect(decide(req('fsopen', []))).toMatchObject({ kind: 'continue' });
  });
});

describe('flood control', () => {
  it('lets a burst through at once, then paces calls at the rate: it waits, never refuses', () => {
    let t = 0;
    const p = new Pacer(10, 3, () => t);
    expect([p.reserve(), p.reserve(), p.reserve(), p.reserve(), p.reserve()]).toEqual([0, 0, 0, 100, 200]);
    t += 1000; // a quiet second refills the burst
    expect([p.reserve(), p.reserve(), p.reserve(), p.reserve()]).toEqual([0, 0, 0, 100]);
  });

  it('answers an over-budget call later with its verdict instead of EAGAIN, and other containers at once', async () => {
    const v = new VetterActor({} as never, () => 0); // a still clock: no budget comes back meanwhile
    const r = (container: string) => ({ container, pid: 1, syscall: 'mount', args: [0n, 0n, 0n, 0n], strings: { target: '/t', fstype: 'tmpfs' } }) as VetRequest;
    const first = Array.from({ length: RATE_BURST }, () => v.vet(r('flood')));
    expect(first.every((x) => !(x instanceof Promise))).toBe(true);
    const late = v.vet(r('flood'));
    expect(late).toBeInstanceOf(Promise);
    expect(v.vet(r('quiet'))).not.toBeInstanceOf(Promise);
    expect(await late).toEqual(decide(r('flood')));
  });
});

describe('seccomp notify rules', () => {
  const docker = {
    defaultAction: 'SCMP_ACT_ERRNO', architectures: ['SCMP_ARCH_X86_64'],
    syscalls: [
      { names: ['read', 'write', 'mount', 'umount2', 'chmod'], action: 'SCMP_ACT_ALLOW' },
      { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0, op: 'SCMP_CMP_EQ' }] },
    ],
  };
  it("notifies the mount family the engine's profile allowed, and keeps every other rule", () => {
    const s = addNotifyRules({ root: { path: 'r' }, linux: { seccomp: docker } }, '/run/eci/seccomp.sock', 'c1');
    const sc = s.linux!.seccomp as typeof docker & { listenerPath: string; listenerMetadata: string; flags?: unknown };
    expect(sc.listenerPath).toBe('/run/eci/seccomp.sock');
    expect(sc.listenerMetadata).toBe('c1');
    expect(sc.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(sc.syscalls.slice(0, 3)).toEqual([
      { names: ['read', 'write'], action: 'SCMP_ACT_ALLOW' }, // chmod: argument-filtered rules (see below)
      docker.syscalls[1],
      { names: ['mount', 'umount2'], action: 'SCMP_ACT_NOTIFY' }, // the rest stay refused by the default action
    ]);
    expect(sc.syscalls.slice(3).every((r) => r.names.length === 1 && r.names[0] === 'chmod' && (r as { args?: unknown[] }).args?.length)).toBe(true);
    expect(sc.flags).toBeUndefined();
  });
  it('adds a notify-only filter when the engine has none (--privileged)', () => {
    const sc = addNotifyRules({ root: { path: 'r' }, linux: {} }, '/s', 'c').linux!.seccomp as { defaultAction: string; syscalls: { names: string[]; action: string }[] };
    expect(sc.defaultAction).toBe('SCMP_ACT_ALLOW');
    expect(sc.syscalls[0]).toEqual({ names: [...MOUNT_FAMILY], action: 'SCMP_ACT_NOTIFY' });
    expect(sc.syscalls.flatMap((r) => r.names)).not.toContain('read'); // never the data path
  });
});

import { translateIdOptions } from '../../actors/vetter/decide.ts';
describe('remount options in host ids', () => {
  const r = { hostID: 165536, size: 65536 };
  it('turns host ids of the container range back into container ids', () => {
    expect(translateIdOptions('uid=165536,gid=165537,size=1m', r, r)).toBe('uid=0,gid=1,size=1m');
    expect(translateIdOptions('uid=100000', r, r)).toBe('uid=100000'); // not ours: the kernel judges
    expect(translateIdOptions(undefined, r, r)).toBeUndefined();
  });
  it('is applied to remounts only', () => {
    const v = decide({ container: 'c', pid: 1, syscall: 'mount', args: [0n, 0n, 0n, MS.REMOUNT], strings: { target: '/t', data: 'uid=165536' }, uid: r, gid: r });
    expect(v.kind === 'perform' && v.perform.op === 'mount' && v.perform.data).toBe('uid=0');
    const n = decide({ container: 'c', pid: 1, syscall: 'mount', args: [0n, 0n, 0n, 0n], strings: { target: '/t', data: 'uid=165536' }, uid: r, gid: r });
    expect(n.kind === 'perform' && n.perform.op === 'mount' && n.perform.data).toBe('uid=165536');
  });
});

// ---------- setuid/setgid vetting (appended) ----------
import { CHMOD_FAMILY, CREATE_FAMILY, S_ISGID, S_ISUID } from '../../actors/runc/seccomp.ts';
import { chmodAsHelperArgs } from '../../native/seccomp-agent.ts';

type Arg = { index: number; value: number; valueTwo: number; op: string };
type Rule = { names: string[]; action: string; args?: Arg[]; errnoRet?: number };

/** What the filter does with one call, the way libseccomp evaluates rules (the default when none matches). */
function evaluate(sc: { defaultAction: string; syscalls: Rule[] }, name: string, args: number[]): string {
  const hits = sc.syscalls.filter((r) => r.names.includes(name) && (r.args ?? []).every((a) => ((args[a.index] ?? 0) & a.value) === a.valueTwo));
  const acts = [...new Set(hits.map((r) => r.action + (r.errnoRet !== undefined ? `(${r.errnoRet})` : '')))];
  if (acts.length > 1) throw new Error(`${name}: overlapping rules with different actions ${acts.join(', ')}`);
  return acts[0] ?? sc.defaultAction;
}

describe('setuid/setgid seccomp rules', () => {
  const dockerLike = {
    defaultAction: 'SCMP_ACT_ERRNO', architectures: ['SCMP_ARCH_X86_64'],
    syscalls: [{ names: ['read', 'chmod', 'fchmod', 'fchmodat', 'open', 'openat', 'openat2', 'creat', 'mknod', 'mknodat', 'mkdir', 'mount'], action: 'SCMP_ACT_ALLOW' }],
  };
  const rulesOf = (seccomp?: unknown) =>
    addNotifyRules({ root: { path: 'r' }, linux: seccomp ? { seccomp } : {} }, '/s', 'c').linux!.seccomp as { defaultAction: string; syscalls: Rule[] };

  it('takes the vetted names out of the unconditional ALLOW and adds the rule shape runc accepted', () => {
    const sc = rulesOf(dockerLike);
    expect(sc.syscalls[0]).toEqual({ names: ['read', 'mkdir'], action: 'SCMP_ACT_ALLOW' });
    const m = (index: number, value: number, valueTwo: number) => ({ index, value, valueTwo, op: 'SCMP_CMP_MASKED_EQ' });
    expect(sc.syscalls.filter((r) => r.names[0] === 'fchmodat')).toEqual([
      { names: ['fchmodat'], action: 'SCMP_ACT_NOTIFY', args: [m(2, 0o4000, 0o4000)] },
      { names: ['fchmodat'], action: 'SCMP_ACT_NOTIFY', args: [m(2, 0o2000, 0o2000)] },
      { names: ['fchmodat'], action: 'SCMP_ACT_ALLOW', args: [m(2, 0o6000, 0)] },
    ]);
    expect(sc.syscalls.filter((r) => r.names[0] === 'creat')).toEqual([
      { names: ['creat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, args: [m(1, 0o4000, 0o4000)] },
      { names: ['creat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, args: [m(1, 0o2000, 0o2000)] },
      { names: ['creat'], action: 'SCMP_ACT_ALLOW', args: [m(1, 0o6000, 0)] },
    ]);
    expect(sc.syscalls.find((r) => r.names[0] === 'openat2')).toEqual({ names: ['openat2'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 });
    // fchmodat2 was not in the profile: left to its default action, no rule
    expect(sc.syscalls.some((r) => r.names.includes('fchmodat2'))).toBe(false);
  });

  it('notifies exactly the modes with S_ISUID/S_ISGID and allows the others', () => {
    for (const sc of [rulesOf(dockerLike), rulesOf()]) {
      for (const [name, i] of Object.entries(CHMOD_FAMILY)) {
        if (!sc.syscalls.some((r) => r.names.includes(name))) continue;
        for (const mode of [0o755, 0o1777, 0o644, 0o4755, 0o2755, 0o6755, 0o4000, 0o2000, 0x10000 | 0o755]) {
          const args = [3, 0, 0, 0];
          args[i] = mode;
          expect(evaluate(sc, name, args), `${name} 0${mode.toString(8)}`).toBe(mode & (S_ISUID | S_ISGID) ? 'SCMP_ACT_NOTIFY' : 'SCMP_ACT_ALLOW');
        }
      }
    }
  });

  it('refuses setuid/setgid creation (O_CREAT, O_TMPFILE, creat, mknod) and nothing else', () => {
    const O_CREAT = 0o100, O_TMPFILE = 0o20200000, O_RDWR = 2;
    for (const sc of [rulesOf(dockerLike), rulesOf()]) {
      for (const [name, { flags, mode }] of Object.entries(CREATE_FAMILY)) {
        const call = (f: number, md: number) => {
          const args = [0, 0, 0, 0];
          if (flags !== undefined) args[flags] = f;
          args[mode] = md;
          return evaluate(sc, name, args);
        };
        const refuse = flags === undefined ? [[0, 0o4755], [0, 0o2755], [0, 0o100000 | 0o4755]] : [[O_CREAT | O_RDWR, 0o4755], [O_CREAT, 0o2700], [O_TMPFILE | O_RDWR, 0o6755]];
        const allow = flags === undefined ? [[0, 0o755], [0, 0o1777]] : [[O_RDWR, 0o4755], [O_CREAT | O_RDWR, 0o755], [O_TMPFILE | O_RDWR, 0o644], [0, 0]];
        for (const [f, md] of refuse) expect(call(f, md), `${name} ${f} 0${md.toString(8)}`).toMatch(/^SCMP_ACT_ERRNO/);
        for (const [f, md] of allow) expect(call(f, md), `${name} ${f} 0${md.toString(8)}`).toBe('SCMP_ACT_ALLOW');
      }
    }
  });

  it('leaves alone what the profile did not allow unconditionally', () => {
    const sc = rulesOf({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['chmod'], action: 'SCMP_ACT_ALLOW', args: [{ index: 1, value: 0o6000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] }] });
    expect(sc.syscalls).toEqual([{ names: ['chmod'], action: 'SCMP_ACT_ALLOW', args: [{ index: 1, value: 0o6000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] }]);
  });

  it('without a profile (--privileged): NOTIFY and ERRNO rules only, over the ALLOW default', () => {
    const sc = rulesOf();
    expect(sc.defaultAction).toBe('SCMP_ACT_ALLOW');
    expect(sc.syscalls.filter((r) => r.names[0] === 'chmod').map((r) => r.action)).toEqual(['SCMP_ACT_NOTIFY', 'SCMP_ACT_NOTIFY']);
    expect(sc.syscalls.filter((r) => r.names[0] === 'fchmodat2').length).toBe(2);
    expect(sc.syscalls.filter((r) => r.action === 'SCMP_ACT_ALLOW')).toEqual([]);
  });
});

describe('setuid/setgid decisions', () => {
  it('performs chmod-family calls that set S_ISUID/S_ISGID, continues the others', () => {
    expect(decide(req('chmod', [0n, 0o4755n], { path: '/v/f' }))).toMatchObject({ kind: 'perform', perform: { op: 'chmod', syscall: 'chmod', path: '/v/f', mode: 0o4755, flags: 0 } });
    const v = decide(req('chmod', [0n, 0o4755n], { path: '/v/f' }));
    expect(v.kind === 'perform' && v.perform.op === 'chmod' && 'dirfd' in v.perform).toBe(false);
    expect(decide(req('fchmod', [5n, 0o2775n]))).toMatchObject({ kind: 'perform', perform: { op: 'chmod', syscall: 'fchmod', fd: 5, mode: 0o2775 } });
    expect(decide(req('fchmodat', [4n, 0n, 0o6755n, 0x100n], { path: 'f' }))).toMatchObject({ kind: 'perform', perform: { op: 'chmod', syscall: 'fchmodat', dirfd: 4, path: 'f', mode: 0o6755, flags: 0 } });
    expect(decide(req('fchmodat2', [0xffffff9cn, 0n, 0o4700n, 0x100n], { path: 'l' }))).toMatchObject({ kind: 'perform', perform: { op: 'chmod', syscall: 'fchmodat2', path: 'l', mode: 0o4700, flags: 0x100 } });
    const at = decide(req('fchmodat', [BigInt.asUintN(64, -100n), 0n, 0o4755n], { path: 'f' }));
    expect(at.kind === 'perform' && at.perform.op === 'chmod' && at.perform.dirfd).toBeUndefined(); // AT_FDCWD: the caller's cwd
    for (const [sc, args] of [['chmod', [0n, 0o755n]], ['fchmod', [3n, 0o1777n]], ['fchmodat', [3n, 0n, 0o644n]], ['fchmodat2', [3n, 0n, 0o10755n & 0o7777n, 0n]]] as const)
      expect(decide(req(sc, [...args], { path: 'f' })), sc).toMatchObject({ kind: 'continue' });
    expect(decide(req('chmod', [0n, 0x10000n | 0o4755n], { path: 'f' }))).toMatchObject({ kind: 'perform', perform: { mode: 0o4755 } }); // only 07777 counts
  });
  it('refuses when the path cannot be read', () => {
    expect(decide(req('chmod', [0n, 0o4755n], { path: null }))).toMatchObject({ kind: 'errno', code: 'EPERM' });
    expect(decide(req('fchmodat', [3n, 0n, 0o2755n], {}))).toMatchObject({ kind: 'errno', code: 'EPERM' });
  });
  it('builds the eci-helper chmod-as command line', () => {
    expect(chmodAsHelperArgs({ pid: 7, syscall: 'fchmodat', dirfd: 4, path: 'f', mode: 0o4755, flags: 0, notify: { fd: 9, id: 5n }, protect: [31, 32], protectDevs: ['8:1'] }, 3)).toEqual([
      'chmod-as', '--pid', '7', '--dirfd', '4', '--path', 'f', '--mode', '04755', '--flags', '0', '--syscall', 'fchmodat',
      '--notif-fd', '3', '--notif-id', '5', '--protect-id', '31', '--protect-id', '32', '--protect-dev', '8:1',
    ]);
    expect(chmodAsHelperArgs({ pid: 7, fd: 3, mode: 0o2755 })).toEqual(['chmod-as', '--pid', '7', '--fd', '3', '--mode', '02755']);
    expect(() => chmodAsHelperArgs({ pid: 7, fd: 3, path: 'x', mode: 0o4755 })).toThrow(TypeError);
    expect(() => chmodAsHelperArgs({ pid: 7, path: 'a\0b', mode: 0o4755 })).toThrow(TypeError);
    expect(() => chmodAsHelperArgs({ pid: 7, path: 'a', mode: 0o14755 })).toThrow(TypeError);
  });
});
