import { describe, expect, it } from 'vitest';
import { EciError } from '../../actors/errors.ts';
import type { BindDecision, Resolved } from '../../actors/policy/mounts.ts';
import type { BindPlan } from '../../actors/rootfs.ts';
import { clampCapabilities } from '../../actors/runc/caps.ts';
import { addNotifyRules } from '../../actors/runc/seccomp.ts';
import { applyUserNamespace, clampIdSysctls, clampRlimits, utsSysctlsAsFields, withRootPath, type OciSpec } from '../../actors/runc/spec.ts';
import { CHECK_STEPS, type CheckContext } from '../../actors/spec/checks.ts';
import { emulatedProcMounts, REWRITE_STEPS, withBinds, withMounts, type RewriteContext } from '../../actors/spec/rewrite.ts';
import { runSteps, SpecStepError, type SpecStep } from '../../actors/spec/steps.ts';

const NS = ['pid', 'ipc', 'uts', 'mount', 'network'].map((type) => ({ type }));
const spec = (o: Partial<OciSpec> = {}): OciSpec => ({
  ociVersion: '1.0.2', root: { path: 'rootfs' },
  process: { args: ['sh'], capabilities: { bounding: ['CAP_CHOWN', 'CAP_SYS_ADMIN'] }, rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1048576, soft: 1048576 }] },
  mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }, { destination: '/data', type: 'bind', source: '/home/u/data', options: ['rbind'] }],
  linux: { namespaces: NS, sysctl: { 'net.ipv4.ping_group_range': '0 2147483647', 'kernel.domainname': 'example.org' } },
  ...o,
});

const dir: Resolved = { path: '/home/u/data', dev: 1n, ino: 2n, isDir: true };
const checks = (o: Partial<CheckContext> = {}): CheckContext => ({
  id: 'c1', bundle: '/b', isHostNamespace: () => false, resolve: (p) => (p === '/home/u/data' ? dir : undefined), decisions: [],
  mountPolicy: { restricted: ['/etc/docker'], shared: ['/home'], engineSockets: [], trustedImages: [] },
  ...o,
});

const bind: BindPlan = { index: 1, source: '/home/u/data', target: '/run/eci/containers/c1/binds/0', dev: 1n, ino: 2n, rdonly: false, nosuid: true, nodev: true };
const rewrite = (o: Partial<RewriteContext> = {}): RewriteContext => ({
  id: 'c1', uid: { hostID: 100000, size: 65536 }, gid: { hostID: 100000, size: 65536 }, rootfs: '/run/eci/containers/c1/rootfs',
  binds: [bind], procMounts: emulatedProcMounts(spec(), '/run/eci/proc'), heldCapabilities: new Set(['CAP_CHOWN']),
  hardLimits: { RLIMIT_NOFILE: 524288 }, seccompSocket: '/run/eci/seccomp.sock', createRules: true,
  ...o,
});

describe('the step lists', () => {
  it('check, then rewrite, in this order', () => {
    expect(CHECK_STEPS.map((s) => s.name)).toEqual(['host-namespaces', 'shared-namespaces', 'init-cgroup-binds', 'mount-policy']);
    expect(REWRITE_STEPS.map((s) => s.name)).toEqual([
      'user-namespace', 'group-user-namespace', 'uts-sysctls', 'id-sysctls', 'system-container', 'init-sys-admin', 'capabilities', 'rlimits', 'root-path', 'volumes', 'proc-files',
      'init-cgroupns', 'init-run-tmpfs', 'init-sys-mounts', 'init-container-env', 'init-syscalls', 'docker-setkey', 'seccomp-notify',
    ]);
    for (const s of [...CHECK_STEPS, ...REWRITE_STEPS]) expect(s.name).toMatch(/^[a-z]+(-[a-z]+)*$/);
  });

  it('the rewrite list gives what the nested expression it replaced gave', () => {
    const c = rewrite();
    const before = addNotifyRules(
      withMounts(withBinds(withRootPath(clampRlimits(clampCapabilities(clampIdSysctls(utsSysctlsAsFields(applyUserNamespace(spec(), c.uid, c.gid)), c.gid.size), c.heldCapabilities), c.hardLimits), c.rootfs), c.binds), c.procMounts),
      c.seccompSocket, c.id, { createRules: c.createRules },
    );
    expect(runSteps(REWRITE_STEPS, spec(), c)).toEqual(before);
  });
});

describe('check steps', () => {
  const step = (name: string) => [CHECK_STEPS.find((s) => s.name === name)!];

  it('host-namespaces refuses with the fixed ECI message, naming the step in .step only', () => {
    let err: unknown;
    try {
      runSteps(step('host-namespaces'), spec({ linux: { namespaces: NS.filter((n) => n.type !== 'pid') } }), checks());
    } catch (e) { err = e; }
    expect(err).toBeInstanceOf(SpecStepError);
    expect(err).toMatchObject({
      step: 'host-namespaces', code: 'EHOSTNS',
      message: "eci containers can't share namespaces [pid] with the host (because they use the linux user-namespace for isolation)",
    });
  });

  it('mount-policy records each bind decision, or refuses naming itself', () => {
    const ok = checks();
    runSteps(step('mount-policy'), spec(), ok);
    expect(ok.decisions).toEqual<BindDecision[]>([{ index: 1, kind: 'volume', source: '/home/u/data', resolved: dir, readonly: false }]);
    const refused = spec({ mounts: [{ destination: '/x', type: 'bind', source: '/etc/docker', options: ['rbind'] }] });
    expect(() => runSteps(CHECK_STEPS, refused, checks({ resolve: (p) => ({ ...dir, path: p }) })))
      .toThrow("can't mount /etc/docker because it's configured as a restricted host mount (step mount-policy)");
  });

  it('mount-policy lets every mount through when eci is turned off (no policy)', () => {
    const off = checks({ mountPolicy: undefined });
    runSteps(CHECK_STEPS, spec({ mounts: [{ destination: '/x', type: 'bind', source: '/etc/docker' }] }), off);
    expect(off.decisions).toEqual([]);
  });
});

describe('rewrite steps, each on its own', () => {
  const only = (name: string, s = spec(), c = rewrite()) => runSteps(REWRITE_STEPS.filter((x) => x.name === name), s, c);

  it('user-namespace: a new user namespace mapped to the range', () => {
    const out = only('user-namespace');
    expect(out.linux!.namespaces).toContainEqual({ type: 'user' });
    expect(out.linux!.uidMappings).toEqual([{ containerID: 0, hostID: 100000, size: 65536 }]);
  });
  it('uts-sysctls: kernel.domainname becomes the domainname field', () => {
    const out = only('uts-sysctls') as OciSpec & { domainname?: string };
    expect(out.domainname).toBe('example.org');
    expect(out.linux!.sysctl).not.toHaveProperty('kernel.domainname');
  });
  it('id-sysctls: clamps into the range, refuses a malformed value naming itself', () => {
    expect((only('id-sysctls').linux!.sysctl as Record<string, string>)['net.ipv4.ping_group_range']).toBe('0 65535');
    const bad = spec({ linux: { namespaces: NS, sysctl: { 'net.ipv4.ping_group_range': 'x' } } });
    let err: unknown;
    try { only('id-sysctls', bad); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(EciError);
    expect(err).toMatchObject({ step: 'id-sysctls', code: 'EBADSPEC' });
    expect((err as Error).message).toMatch(/^linux\.sysctl\["net\.ipv4\.ping_group_range"\]: expected two integers, got "x" \(step id-sysctls\)$/);
  });
  it('capabilities and rlimits: at most what eci holds', () => {
    expect((only('capabilities').process as { capabilities: { bounding: string[] } }).capabilities.bounding).toEqual(['CAP_CHOWN']);
    expect((only('rlimits').process as { rlimits: unknown[] }).rlimits).toEqual([{ type: 'RLIMIT_NOFILE', hard: 524288, soft: 524288 }]);
  });
  it('root-path, volumes, proc-files: eci mounts in place of the engine paths', () => {
    expect(only('root-path').root).toEqual({ path: '/run/eci/containers/c1/rootfs' });
    expect((only('volumes').mounts as unknown[])[1]).toEqual({ destination: '/data', type: 'bind', source: bind.target, options: ['rbind', 'nosuid', 'nodev'] });
    expect((only('proc-files').mounts as { destination: string }[]).map((m) => m.destination)).toContain('/proc/meminfo');
    expect(only('proc-files', spec(), rewrite({ procMounts: [] }))).toEqual(spec());
  });
  it('seccomp-notify: a listener for the container', () => {
    expect((only('seccomp-notify').linux!.seccomp as { listenerPath?: string }).listenerPath).toBe('/run/eci/seccomp.sock');
  });
});

describe('runSteps', () => {
  it('stops at the first refusal; an unexpected failure stays unexpected, named', () => {
    const ran: string[] = [];
    const steps: SpecStep<null>[] = [
      { name: 'a', run: (s) => (ran.push('a'), s) },
      { name: 'b', run: () => { throw new TypeError('x is undefined'); } },
      { name: 'c', run: (s) => (ran.push('c'), s) },
    ];
    let err: unknown;
    try { runSteps(steps, spec(), null); } catch (e) { err = e; }
    expect(ran).toEqual(['a']);
    expect(err).not.toBeInstanceOf(EciError);
    expect((err as Error).message).toBe('spec step b: x is undefined');
  });
});
