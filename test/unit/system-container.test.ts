// System containers (actors/spec/system-container.ts): which workloads, what they get, and that the
// rest of the spec (and every other container) is left alone.
import { mkdtempSync, rmSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InnerData } from '../../actors/manager/inner-data.ts';
import { CAP_NAMES } from '../../actors/runc/caps.ts';
import type { OciSpec } from '../../actors/runc/spec.ts';
import { REWRITE_STEPS, type RewriteContext } from '../../actors/spec/rewrite.ts';
import { runSteps } from '../../actors/spec/steps.ts';
import { allowSystemSyscalls, innerDataMounts, innerDataTargets, SYSTEM_SYSCALLS, systemWorkload } from '../../actors/spec/system-container.ts';

const DOCKER_CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE'];
// The shape of Docker's default profile for a container without CAP_SYS_ADMIN: clone allowed only
// without namespace flags, mount/unshare/setns absent (the ERRNO default).
const profile = () => ({
  defaultAction: 'SCMP_ACT_ERRNO',
  syscalls: [
    { names: ['read', 'write', 'openat'], action: 'SCMP_ACT_ALLOW' },
    { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 2114060288, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] },
    { names: ['bpf', 'keyctl'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 },
  ],
});
const spec = (args: string[], mounts: { destination: string; type: string; source: string }[] = []): OciSpec => ({
  ociVersion: '1.0.2',
  process: { args, capabilities: { bounding: DOCKER_CAPS, effective: DOCKER_CAPS, permitted: DOCKER_CAPS } },
  root: { path: 'rootfs' },
  mounts,
  linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }], seccomp: profile() },
} as unknown as OciSpec);

const held = new Set<string>(CAP_NAMES.slice(0, 41));
const ctx = (system?: 'engine'): RewriteContext => ({
  id: 'c1', uid: { hostID: 1879048192, size: 65536 }, gid: { hostID: 1879048192, size: 65536 }, rootfs: '/run/eci/containers/c1/rootfs',
  binds: [], procMounts: [], heldCapabilities: held, hardLimits: {}, seccompSocket: '/run/eci/seccomp.sock', createRules: false, system,
});
type Rule = { names: string[]; action: string; args?: unknown[] };
const rulesFor = (s: OciSpec, name: string) => ((s.linux!.seccomp as { syscalls: Rule[] }).syscalls).filter((r) => r.names.includes(name));

describe('system containers', () => {
  it('recognizes inner engines by the command, nothing else', () => {
    expect(systemWorkload(spec(['dockerd', '--iptables=false']))).toBe('engine');
    expect(systemWorkload(spec(['/usr/bin/containerd']))).toBe('engine');
    expect(systemWorkload(spec(['/usr/local/bin/dockerd-entrypoint.sh']))).toBe('engine');
    for (const args of [['sh', '-c', 'dockerd'], ['/bin/dockerd-helper'], ['bash'], []]) expect(systemWorkload(spec(args))).toBeUndefined();
  });

  it('backs the inner data dirs the spec leaves free, only for engines', () => {
    expect(innerDataTargets(spec(['dockerd']))).toEqual([
      { name: 'docker', destination: '/var/lib/docker' },
      { name: 'containerd', destination: '/var/lib/containerd' },
    ]);
    // A volume the user gave for /var/lib/docker (docker:dind's VOLUME) is kept.
    expect(innerDataTargets(spec(['dockerd'], [{ destination: '/var/lib/docker/', type: 'bind', source: '/v' }])).map((t) => t.name)).toEqual(['containerd']);
    expect(innerDataTargets(spec(['sh']))).toEqual([]);
    expect(innerDataMounts([{ destination: '/var/lib/docker' }], ['/s/docker'])).toEqual([
      { destination: '/var/lib/docker', type: 'bind', source: '/s/docker', options: ['rbind', 'rw', 'nosuid', 'nodev'] },
    ]);
  });

  it('opens the engine syscalls in the profile and takes them out of filtered or refusing rules', () => {
    const out = allowSystemSyscalls(spec(['dockerd']));
    for (const n of ['mount', 'unshare', 'setns', 'clone', 'keyctl']) {
      expect(rulesFor(out, n), n).toEqual([{ names: [...SYSTEM_SYSCALLS], action: 'SCMP_ACT_ALLOW' }]);
    }
    expect(rulesFor(out, 'bpf')).toEqual([{ names: ['bpf'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }]); // still refused
    expect((out.linux!.seccomp as { defaultAction: string }).defaultAction).toBe('SCMP_ACT_ERRNO');
    const unconfined = { ...spec(['dockerd']), linux: { namespaces: [] } } as OciSpec;
    expect(allowSystemSyscalls(unconfined)).toBe(unconfined);
  });

  it('leaves what the profile already allows outright where it is (e.g. --cap-add SYS_ADMIN)', () => {
    const s = spec(['dockerd']);
    const sc = s.linux!.seccomp as { syscalls: Rule[] };
    sc.syscalls = [{ names: ['read', 'mount', 'umount2'], action: 'SCMP_ACT_ALLOW' }, ...sc.syscalls];
    const out = allowSystemSyscalls(s);
    expect(rulesFor(out, 'mount')).toEqual([{ names: ['read', 'mount', 'umount2'], action: 'SCMP_ACT_ALLOW' }]);
    expect(rulesFor(out, 'clone')).toEqual([{ names: SYSTEM_SYSCALLS.filter((n) => n !== 'mount' && n !== 'umount2'), action: 'SCMP_ACT_ALLOW' }]);
    const open = { ...s, linux: { ...s.linux, seccomp: { defaultAction: 'SCMP_ACT_ALLOW' } } } as OciSpec;
    expect(allowSystemSyscalls(open)).toBe(open); // an ALLOW default with no rule: nothing to add
  });

  it('gives an engine every held capability and the mount family to the vetter; other containers keep theirs', () => {
    const eng = runSteps(REWRITE_STEPS, spec(['dockerd']), ctx('engine'));
    const caps = (eng.process as { capabilities: Record<string, string[]> }).capabilities;
    expect(caps.bounding).toContain('CAP_SYS_ADMIN');
    expect(caps.effective).toContain('CAP_NET_ADMIN');
    expect(rulesFor(eng, 'mount').map((r) => r.action)).toEqual(['SCMP_ACT_NOTIFY']);
    expect(rulesFor(eng, 'bpf').map((r) => r.action)).toEqual(['SCMP_ACT_ERRNO']);

    const plain = runSteps(REWRITE_STEPS, spec(['sh']), ctx());
    expect((plain.process as { capabilities: Record<string, string[]> }).capabilities.bounding).toEqual(DOCKER_CAPS);
    expect(rulesFor(plain, 'mount')).toEqual([]); // still the profile's ERRNO default
    expect(rulesFor(plain, 'clone')[0].args).toHaveLength(1);
  });

  it("gives an engine with a cgroup view systemd's cgroup steps only (no container=, no /run tmpfs)", () => {
    const sys = [{ destination: '/sys', type: 'sysfs', source: 'sysfs' }, { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup' }];
    const eng = runSteps(REWRITE_STEPS, spec(['dockerd'], sys), { ...ctx('engine'), engineCgroups: { cgroups: 'hybrid' } });
    expect(eng.linux!.namespaces!.filter((n) => n.type === 'cgroup')).toEqual([{ type: 'cgroup' }]);
    expect(((eng.mounts ?? []) as { destination: string }[]).map((m) => m.destination)).toEqual(['/sys', '/sys/fs/cgroup', '/sys/fs/cgroup/unified']);
    expect((eng.process as { env?: string[] }).env ?? []).toEqual([]);
    const plain = runSteps(REWRITE_STEPS, spec(['dockerd'], sys), ctx('engine'));
    expect(plain.linux!.namespaces!.some((n) => n.type === 'cgroup')).toBe(false);
  });
});

describe('inner engine data dirs on the host', () => {
  it('makes root-owned 0700 dirs per container, removes them, and sweeps those of gone containers', () => {
    const dir = mkdtempSync('/tmp/eci-inner-');
    try {
      const inner = new InnerData(dir);
      const [d] = inner.make('c1', ['docker']);
      expect(d.path).toBe(join(dir, 'inner', 'c1', 'docker'));
      expect(statSync(d.path).mode & 0o777).toBe(0o700);
      expect(statSync(join(dir, 'inner')).mode & 0o777).toBe(0o700);
      expect(d.ino).toBe(statSync(d.path, { bigint: true }).ino);
      inner.make('c2', ['docker', 'containerd']);
      expect(inner.sweep(new Set(['c2']))).toEqual(['c1']);
      expect(existsSync(join(dir, 'inner', 'c1'))).toBe(false);
      inner.remove('c2');
      expect(existsSync(join(dir, 'inner', 'c2'))).toBe(false);
      expect(() => inner.make('../x', ['docker'])).toThrow(/bad container id/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
