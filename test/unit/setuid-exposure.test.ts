import { describe, expect, it } from 'vitest';
import { needsCreateRules, reachableByOthers } from '../../actors/setuid-exposure.ts';
import { addNotifyRules } from '../../actors/runc/seccomp.ts';

type St = { uid: number; gid: number; mode: number; isDirectory(): boolean };
const dir = (uid: number, gid: number, perm: number): St => ({ uid, gid, mode: 0o040000 | perm, isDirectory: () => true });
const fakeStat = (tree: Record<string, St>) => (p: string) => {
  const s = tree[p];
  if (!s) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
  return s;
};

describe('reachableByOthers', () => {
  const base = { '/': dir(0, 0, 0o755), '/var': dir(0, 0, 0o755), '/var/lib': dir(0, 0, 0o755) };
  it('is false under a root-owned dir only root (and the root group) may search', () => {
    const t = { ...base, '/var/lib/docker': dir(0, 0, 0o710), '/var/lib/docker/overlay2': dir(0, 0, 0o710), '/var/lib/docker/overlay2/x': dir(0, 0, 0o755), '/var/lib/docker/overlay2/x/diff': dir(0, 0, 0o755) };
    expect(reachableByOthers('/var/lib/docker/overlay2/x/diff', fakeStat(t))).toBe(false);
    expect(reachableByOthers('/var/lib/c', fakeStat({ ...base, '/var/lib/c': dir(0, 0, 0o700) }))).toBe(false);
  });
  it('is true when every ancestor can be searched by others, by a non-root group, or is not root\'s', () => {
    expect(reachableByOthers('/var/lib/x', fakeStat({ ...base, '/var/lib/x': dir(0, 0, 0o755) }))).toBe(true);
    expect(reachableByOthers('/var/lib/x', fakeStat({ ...base, '/var/lib/x': dir(0, 100, 0o750) }))).toBe(true);
    expect(reachableByOthers('/var/lib/x', fakeStat({ ...base, '/var/lib/x': dir(1000, 1000, 0o700) }))).toBe(true);
  });
  it('fails closed: a path it cannot stat counts as reachable', () => {
    expect(reachableByOthers('/nowhere/x', fakeStat(base))).toBe(true);
  });
});

describe('needsCreateRules', () => {
  const unreachable = () => false;
  const reachable = () => true;
  it('keeps the rules for a writable host directory, whatever the rootfs', () => {
    expect(needsCreateRules({ rootfsWrites: '/r', rootfsReadonly: false, volumes: [{ readonly: false, isDir: true }] }, unreachable)).toBe(true);
  });
  it('drops them with only read-only or single-file volumes and a rootfs nobody else can reach', () => {
    expect(needsCreateRules({ rootfsWrites: '/r', rootfsReadonly: false, volumes: [{ readonly: true, isDir: true }, { readonly: false, isDir: false }] }, unreachable)).toBe(false);
    expect(needsCreateRules({ rootfsWrites: '/r', rootfsReadonly: false, volumes: [] }, unreachable)).toBe(false);
  });
  it('keeps them for a writable rootfs others can reach, not for a read-only one', () => {
    expect(needsCreateRules({ rootfsWrites: '/tmp/bundle/rootfs', rootfsReadonly: false, volumes: [] }, reachable)).toBe(true);
    expect(needsCreateRules({ rootfsWrites: '/tmp/bundle/rootfs', rootfsReadonly: true, volumes: [] }, reachable)).toBe(false);
  });
});

describe('addNotifyRules createRules', () => {
  type Rule = { names: string[]; action: string; args?: unknown[] };
  const docker = { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['openat', 'open', 'creat', 'openat2', 'chmod', 'mount', 'read'], action: 'SCMP_ACT_ALLOW' }] };
  const rules = (createRules?: boolean) =>
    ((addNotifyRules({ root: { path: 'r' }, linux: { seccomp: docker } }, '/s', 'c', createRules === undefined ? {} : { createRules }).linux!.seccomp) as { syscalls: Rule[] }).syscalls;
  it('by default filters the creating syscalls by argument (fail closed)', () => {
    expect(rules().some((r) => r.names.includes('openat') && r.args?.length)).toBe(true);
  });
  it('without them, open/openat/creat stay unconditional allows; chmod and the mount family stay notified', () => {
    const r = rules(false);
    expect(r.some((x) => x.names.includes('openat') && x.args?.length)).toBe(false);
    expect(r.find((x) => x.names.includes('openat'))?.action).toBe('SCMP_ACT_ALLOW');
    expect(r.find((x) => x.names.includes('openat2'))?.action).toBe('SCMP_ACT_ALLOW');
    expect(r.some((x) => x.names.includes('chmod') && x.action === 'SCMP_ACT_NOTIFY')).toBe(true);
    expect(r.some((x) => x.names.includes('mount') && x.action === 'SCMP_ACT_NOTIFY')).toBe(true);
  });
});
