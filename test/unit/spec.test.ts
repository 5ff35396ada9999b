import { describe, expect, it } from 'vitest';
import { applyUserNamespace, checkNamespaces, clampIdSysctls, parseSpec, withRootPath, type OciSpec } from '../../actors/runc/spec.ts';

const base = (ns: { type: string; path?: string }[]): OciSpec => ({
  ociVersion: '1.0.2', root: { path: 'rootfs' }, process: { args: ['sh'] }, linux: { namespaces: ns },
});
const all = ['pid', 'ipc', 'uts', 'mount', 'network'].map((type) => ({ type }));
const never = () => false;

describe('parseSpec', () => {
  it('names the problem in one line', () => {
    expect(() => parseSpec('{', '/b/config.json')).toThrow(/^\/b\/config.json: not valid JSON/);
    expect(() => parseSpec('[]', 'c')).toThrow('c: expected a JSON object');
    expect(() => parseSpec('{"linux":{}}', 'c')).toThrow('c: root.path: expected a non-empty string');
    expect(() => parseSpec('{"root":{"path":"r"}}', 'c')).toThrow(/c: linux: expected an object/);
    expect(() => parseSpec('{"root":{"path":"r"},"linux":{"namespaces":[{"path":1}]}}', 'c')).toThrow(/linux.namespaces/);
    expect(() => parseSpec('{"root":{"path":"r"},"linux":{},"mounts":{}}', 'c')).toThrow(/mounts: expected an array/);
  });
  it('accepts a minimal spec', () => {
    expect(parseSpec(JSON.stringify(base(all)), 'c').root?.path).toBe('rootfs');
  });
});

describe('checkNamespaces', () => {
  it('accepts private namespaces', () => {
    expect(() => checkNamespaces(base(all), never)).not.toThrow();
  });
  it('refuses the host network (missing entry or host path)', () => {
    const msg = "eci containers can't share a network namespace with the host (because they use the linux user-namespace for isolation)";
    expect(() => checkNamespaces(base(all.filter((n) => n.type !== 'network')), never)).toThrow(msg);
    const withPath = base([...all.filter((n) => n.type !== 'network'), { type: 'network', path: '/proc/1/ns/net' }]);
    expect(() => checkNamespaces(withPath, (t, p) => t === 'network' && p === '/proc/1/ns/net')).toThrow(msg);
    expect(() => checkNamespaces(withPath, never)).not.toThrow(); // another container's netns
  });
  it('names each shared namespace', () => {
    expect(() => checkNamespaces(base(all.filter((n) => n.type !== 'pid')), never))
      .toThrow("eci containers can't share namespaces [pid] with the host (because they use the linux user-namespace for isolation)");
    expect(() => checkNamespaces(base(all.filter((n) => n.type !== 'ipc' && n.type !== 'uts')), never)).toThrow(/\[ipc uts\]/);
    const hostUts = base([...all.filter((n) => n.type !== 'uts'), { type: 'uts', path: '/proc/1/ns/uts' }]);
    expect(() => checkNamespaces(hostUts, (t) => t === 'uts')).toThrow(/\[uts\]/);
  });
});

describe('applyUserNamespace', () => {
  const r = { hostID: 165536, size: 65536 };
  it('adds a new user namespace with the exclusive mapping', () => {
    const s = applyUserNamespace(base(all), r, r);
    expect(s.linux?.namespaces?.filter((n) => n.type === 'user')).toEqual([{ type: 'user' }]);
    expect(s.linux?.uidMappings).toEqual([{ containerID: 0, hostID: 165536, size: 65536 }]);
    expect(s.linux?.gidMappings).toEqual([{ containerID: 0, hostID: 165536, size: 65536 }]);
  });
  it('ignores a requested user namespace path and earlier mappings (--userns=host, userns-remap)', () => {
    const spec = base([...all, { type: 'user', path: '/proc/1/ns/user' }]);
    spec.linux!.uidMappings = [{ containerID: 0, hostID: 0, size: 1 }];
    const s = applyUserNamespace(spec, r, r);
    expect(s.linux?.namespaces?.filter((n) => n.type === 'user')).toEqual([{ type: 'user' }]);
    expect(s.linux?.uidMappings?.[0].hostID).toBe(165536);
  });
  it('does not modify its input and keeps unknown fields', () => {
    const spec = { ...base(all), annotations: { a: 'b' } };
    const before = JSON.stringify(spec);
    const s = withRootPath(applyUserNamespace(spec, r, r), '/run/eci/containers/x/rootfs');
    expect(JSON.stringify(spec)).toBe(before);
    expect(s.annotations).toEqual({ a: 'b' });
    expect(s.root).toEqual({ path: '/run/eci/containers/x/rootfs' });
  });
});

describe('clampIdSysctls', () => {
  it("keeps Docker's ping_group_range inside the container's gids", () => {
    const s = { ...base(all), linux: { ...base(all).linux, sysctl: { 'net.ipv4.ping_group_range': '0 2147483647', 'net.ipv4.ip_unprivileged_port_start': '0' } } };
    expect((clampIdSysctls(s, 65536).linux as { sysctl: Record<string, string> }).sysctl).toEqual({
      'net.ipv4.ping_group_range': '0 65535', 'net.ipv4.ip_unprivileged_port_start': '0',
    });
    expect(clampIdSysctls(base(all), 65536)).toEqual(base(all));
    const bad = { ...base(all), linux: { sysctl: { 'net.ipv4.ping_group_range': 'x' } } };
    expect(() => clampIdSysctls(bad, 65536)).toThrow(/ping_group_range.*two integers/);
  });
});

import { capsFromMask, clampCapabilities } from '../../actors/runc/caps.ts';
describe('capabilities', () => {
  it('reads a CapBnd mask and clamps every set to it', () => {
    const held = capsFromMask('000001fffeffffff'); // this kind of machine: no CAP_SYS_RESOURCE (24)
    expect(held.has('CAP_SYS_ADMIN')).toBe(true);
    expect(held.has('CAP_SYS_RESOURCE')).toBe(false);
    expect(held.has('CAP_CHECKPOINT_RESTORE')).toBe(true);
    const all = ['CAP_SYS_ADMIN', 'CAP_SYS_RESOURCE', 'CAP_CHOWN'];
    const s = clampCapabilities({ ...base(all.map(() => ({ type: 'pid' }))), process: { capabilities: { bounding: all, effective: all, permitted: all } } }, held);
    expect((s.process as { capabilities: Record<string, string[]> }).capabilities).toEqual({
      bounding: ['CAP_SYS_ADMIN', 'CAP_CHOWN'], effective: ['CAP_SYS_ADMIN', 'CAP_CHOWN'], permitted: ['CAP_SYS_ADMIN', 'CAP_CHOWN'],
    });
  });
  it('gives a privileged spec (every classic capability) every capability eci holds', async () => {
    const { CAP_NAMES } = await import('../../actors/runc/caps.ts');
    const held = capsFromMask('000001fffeffffff');
    const dockerPrivileged = CAP_NAMES.slice(0, 38);
    const s = clampCapabilities({ ...base([]), process: { capabilities: { bounding: dockerPrivileged, effective: dockerPrivileged, ambient: [] } } }, held);
    const c = (s.process as { capabilities: Record<string, string[]> }).capabilities;
    expect(c.bounding).toContain('CAP_BPF');
    expect(c.bounding).not.toContain('CAP_SYS_RESOURCE');
    expect(c.bounding).toHaveLength(held.size);
    expect(c.ambient).toEqual([]);
  });
});
