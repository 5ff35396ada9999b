import { describe, expect, it } from 'vitest';
import { decide, MOUNT_ATTR, MS, RateLimiter, type VetRequest } from '../../actors/vetter/decide.ts';
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

describe('rate limiter', () => {
  it('refuses past the burst and refills with time', () => {
    let t = 0;
    const rl = new RateLimiter(10, 3, () => t);
    expect([rl.take(), rl.take(), rl.take(), rl.take()]).toEqual([true, true, true, false]);
    t += 100;
    expect(rl.take()).toBe(true);
    expect(rl.take()).toBe(false);
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
    expect(sc.syscalls).toEqual([
      { names: ['read', 'write', 'chmod'], action: 'SCMP_ACT_ALLOW' },
      docker.syscalls[1],
      { names: ['mount', 'umount2'], action: 'SCMP_ACT_NOTIFY' }, // the rest stay refused by the default action
    ]);
    expect(sc.flags).toBeUndefined();
  });
  it('adds a notify-only filter when the engine has none (--privileged)', () => {
    const sc = addNotifyRules({ root: { path: 'r' }, linux: {} }, '/s', 'c').linux!.seccomp as { defaultAction: string; syscalls: { names: string[]; action: string }[] };
    expect(sc.defaultAction).toBe('SCMP_ACT_ALLOW');
    expect(sc.syscalls).toEqual([{ names: [...MOUNT_FAMILY], action: 'SCMP_ACT_NOTIFY' }]);
    expect(sc.syscalls[0].names).not.toContain('read'); // never the data path
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
