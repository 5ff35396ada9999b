// systemd as PID 1: which processes count as systemd, the init-* spec steps, the cgroup delegation
// plan, and the launcher's stop-signal translation for `runc kill`.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { delegationPlan } from '../../actors/cgroup-delegation.ts';
import type { OciMount } from '../../actors/policy/mounts.ts';
import type { OciSpec } from '../../actors/runc/spec.ts';
import { REWRITE_STEPS, type RewriteContext } from '../../actors/spec/rewrite.ts';
import { CHECK_STEPS, type CheckContext } from '../../actors/spec/checks.ts';
import { runSteps } from '../../actors/spec/steps.ts';
import { INIT_SYSCALLS, RUN_TMPFS, UNIFIED_MOUNT, withCgroupNamespace, withContainerEnv, withInitSyscalls, withoutEngineCgroupBinds, withRunTmpfs, withSysAdmin, withSysMounts, type SystemInit } from '../../actors/spec/system-init.ts';
import { STOP_SIGNAL_FILE, writeStopSignal } from '../../actors/stop-signal.ts';
import { cgroupLayout, detectSystemInit, resolveInRoot } from '../../actors/system-init.ts';
import { REPO } from '../helpers/manager.ts';

const INIT: SystemInit = { container: 'docker' };
const DOCKER_CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_SETUID', 'CAP_SETGID', 'CAP_KILL'];
// The mounts of a Docker 20.10 spec for a non-privileged container, plus a bind under /run.
const dockerSpec = (o: Partial<OciSpec> = {}): OciSpec => ({
  ociVersion: '1.0.2', root: { path: '/var/lib/docker/overlay2/x/merged' },
  process: { args: ['/sbin/init'], env: ['PATH=/usr/bin:/bin'], capabilities: { bounding: DOCKER_CAPS, effective: DOCKER_CAPS, permitted: DOCKER_CAPS, inheritable: [] } },
  mounts: [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro', 'nosuid', 'noexec', 'nodev'] },
    { destination: '/etc/hostname', type: 'bind', source: '/var/lib/docker/containers/x/hostname', options: ['rbind', 'rprivate'] },
    { destination: '/run/secrets/s', type: 'bind', source: '/srv/s', options: ['rbind', 'ro'] },
  ],
  linux: { namespaces: ['pid', 'ipc', 'uts', 'mount', 'network'].map((type) => ({ type })) },
  ...o,
});
const mounts = (s: OciSpec) => (s.mounts ?? []) as OciMount[];
const caps = (s: OciSpec) => (s.process as { capabilities: Record<string, string[]> }).capabilities;

describe('the init-* spec steps', () => {
  it('change nothing for a process that is not systemd', () => {
    const s = dockerSpec();
    for (const f of [withCgroupNamespace, withSysAdmin, withRunTmpfs, withSysMounts, withContainerEnv, withInitSyscalls, withoutEngineCgroupBinds]) expect(f(s, undefined)).toBe(s);
  });

  it('init-cgroupns adds a private cgroup namespace unless the spec has one', () => {
    expect(withCgroupNamespace(dockerSpec(), INIT).linux!.namespaces!.filter((n) => n.type === 'cgroup')).toEqual([{ type: 'cgroup' }]);
    const own = dockerSpec({ linux: { namespaces: [{ type: 'cgroup', path: '/proc/42/ns/cgroup' }] } });
    expect(withCgroupNamespace(own, INIT)).toBe(own);
  });

  it('init-sys-admin adds CAP_SYS_ADMIN to the bounding, effective and permitted sets only', () => {
    const c = caps(withSysAdmin(dockerSpec(), INIT));
    for (const set of ['bounding', 'effective', 'permitted']) expect(c[set]).toEqual([...DOCKER_CAPS, 'CAP_SYS_ADMIN']);
    expect(c.inheritable).toEqual([]);
  });

  it('init-run-tmpfs puts tmpfs /run (nosuid,nodev) and /run/lock (also noexec) before the binds under /run', () => {
    const m = mounts(withRunTmpfs(dockerSpec(), INIT));
    expect(m.map((x) => x.destination)).toEqual(['/proc', '/dev', '/sys', '/sys/fs/cgroup', '/etc/hostname', '/run', '/run/lock', '/run/secrets/s']);
    expect(m[5]).toEqual(RUN_TMPFS[0]);
    expect(m[5].options).toEqual(expect.arrayContaining(['nosuid', 'nodev']));
    expect(m[6].options).toEqual(expect.arrayContaining(['nosuid', 'nodev', 'noexec']));
  });

  it('init-run-tmpfs keeps a mount the engine already has at /run or /run/lock', () => {
    const own: OciMount = { destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['size=1m'] };
    const m = mounts(withRunTmpfs(dockerSpec({ mounts: [own] }), INIT));
    expect(m).toEqual([own, RUN_TMPFS[1]]);
    const both = dockerSpec({ mounts: [own, { ...own, destination: '/run/lock' }] });
    expect(withRunTmpfs(both, INIT)).toBe(both);
  });

  it('init-sys-mounts makes /sys read-only and the cgroup mount writable (ownership decides what is)', () => {
    const rw = dockerSpec();
    mounts(rw)[2] = { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'rw'] }; // --privileged
    const m = mounts(withSysMounts(rw, INIT));
    expect(m[2].options).toEqual(['nosuid', 'ro']);
    expect(m[3].options).toEqual(['nosuid', 'noexec', 'nodev']);
    const none = dockerSpec({ mounts: mounts(dockerSpec()).filter((x) => x.destination !== '/sys/fs/cgroup') });
    expect(mounts(withSysMounts(none, INIT))[3]).toMatchObject({ destination: '/sys/fs/cgroup', type: 'cgroup' });
  });

  it('init-sys-mounts adds the cgroup2 view right after the cgroup mount on a hybrid host only', () => {
    const m = mounts(withSysMounts(dockerSpec(), { ...INIT, cgroups: 'hybrid' }));
    expect(m.map((x) => x.destination).slice(2, 5)).toEqual(['/sys', '/sys/fs/cgroup', '/sys/fs/cgroup/unified']);
    expect(m[4]).toEqual(UNIFIED_MOUNT);
    for (const cgroups of ['v1', 'v2'] as const) {
      expect(mounts(withSysMounts(dockerSpec(), { ...INIT, cgroups })).some((x) => x.type === 'cgroup2')).toBe(false);
    }
  });

  it('tells the host cgroup layout from mountinfo as runc does', () => {
    const line = (id: number, at: string, fs: string) => `${id} 1 0:${id} / ${at} rw,relatime - ${fs} ${fs} rw`;
    const hybrid = [line(31, '/sys/fs/cgroup', 'tmpfs'), line(32, '/sys/fs/cgroup/memory', 'cgroup'), line(41, '/sys/fs/cgroup/unified', 'cgroup2')].join('\n');
    expect(cgroupLayout(hybrid)).toBe('hybrid');
    expect(cgroupLayout([line(31, '/sys/fs/cgroup', 'tmpfs'), line(32, '/sys/fs/cgroup/memory', 'cgroup')].join('\n'))).toBe('v1');
    expect(cgroupLayout(line(31, '/sys/fs/cgroup', 'cgroup2'))).toBe('v2');
  });

  it('init-cgroup-binds drops an engine bind of a host cgroup tree (Podman, cgroup v1), before the mount policy refuses it', () => {
    const podman = dockerSpec();
    const hostTree: OciMount = { destination: '/sys/fs/cgroup/systemd', type: 'bind', source: '/sys/fs/cgroup/systemd', options: ['bind', 'nodev', 'noexec', 'nosuid', 'rprivate'] };
    const volume: OciMount = { destination: '/data', type: 'bind', source: '/srv/data', options: ['rbind'] };
    podman.mounts = [...mounts(podman).slice(0, 4), hostTree, volume];
    const out = mounts(withoutEngineCgroupBinds(podman, INIT));
    expect(out).not.toContainEqual(hostTree);
    expect(out).toContainEqual(volume);
    expect(out).toContainEqual(mounts(dockerSpec())[3]); // the cgroup-typed mount stays
    const ctx = (systemInit?: SystemInit): CheckContext => ({
      id: 'c1', bundle: '/b', isHostNamespace: () => false, decisions: [], systemInit,
      resolve: (p) => ({ path: p, dev: 1n, ino: 2n, isDir: true }),
      mountPolicy: { restricted: ['/sys'], shared: ['/srv'], engineSockets: [], trustedImages: [] },
    });
    expect(() => runSteps(CHECK_STEPS, podman, ctx())).toThrow(/restricted host mount/); // any other container: refused as before
    const c = ctx(INIT);
    const checked = runSteps(CHECK_STEPS, podman, c);
    expect(mounts(checked)).not.toContainEqual(hostTree);
    expect(c.decisions.map((d) => mounts(checked)[d.index].destination)).toEqual(['/data']); // decisions index the checked spec
  });

  it('init-container-env sets container= unless the engine did (Podman: container=podman)', () => {
    expect((withContainerEnv(dockerSpec(), INIT).process as { env: string[] }).env).toEqual(['PATH=/usr/bin:/bin', 'container=docker']);
    const podman = dockerSpec({ process: { args: ['/sbin/init'], env: ['container=podman'] } });
    expect(withContainerEnv(podman, INIT)).toBe(podman);
  });

  it('init-syscalls lets through what Docker keeps for CAP_SYS_ADMIN holders, and nothing else', () => {
    // Docker 20.10's profile for a container without CAP_SYS_ADMIN: clone only without namespace flags, no mount.
    const seccomp = { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [
      { names: ['read', 'write', 'sethostname'], action: 'SCMP_ACT_ALLOW' },
      { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 2114060288, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] },
      { names: ['clone3', 'unshare'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 },
      { names: ['open_by_handle_at', 'bpf'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 },
    ] };
    const out = withInitSyscalls(dockerSpec({ linux: { seccomp } }), INIT).linux!.seccomp as typeof seccomp;
    const added = out.syscalls.at(-1)!;
    expect(added).toEqual({ names: INIT_SYSCALLS.filter((n) => n !== 'sethostname'), action: 'SCMP_ACT_ALLOW' });
    expect(out.syscalls.slice(0, 2)).toEqual(seccomp.syscalls.slice(0, 2)); // the engine's allow rules stay
    expect(out.syscalls[2]).toEqual({ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 }); // unshare left the ENOSYS rule
    expect(out.syscalls[3]).toEqual(seccomp.syscalls[3]); // open_by_handle_at, bpf: still refused
    for (const n of ['open_by_handle_at', 'bpf', 'perf_event_open', 'syslog', 'clone3']) expect(INIT_SYSCALLS).not.toContain(n);
    const none = dockerSpec();
    expect(withInitSyscalls(none, INIT)).toBe(none); // no profile: everything is allowed already
  });

  it('run in the rewrite list, where the capability clamp still applies after init-sys-admin', () => {
    const ctx: RewriteContext = {
      id: 'c1', uid: { hostID: 100000, size: 65536 }, gid: { hostID: 100000, size: 65536 }, rootfs: '/run/eci/containers/c1/rootfs',
      binds: [], procMounts: [], heldCapabilities: new Set(DOCKER_CAPS), hardLimits: {}, seccompSocket: '/run/eci/seccomp.sock', createRules: false,
      systemInit: INIT,
    };
    const out = runSteps(REWRITE_STEPS, dockerSpec(), ctx);
    expect(caps(out).bounding).not.toContain('CAP_SYS_ADMIN'); // eci does not hold it here: never more than eci holds
    expect(out.linux!.namespaces!.map((n) => n.type)).toEqual(expect.arrayContaining(['cgroup', 'user']));
    expect(mounts(out).map((m) => m.destination)).toEqual(expect.arrayContaining(['/run', '/run/lock']));
    const held = runSteps(REWRITE_STEPS, dockerSpec(), { ...ctx, heldCapabilities: new Set([...DOCKER_CAPS, 'CAP_SYS_ADMIN']) });
    expect(caps(held).bounding).toContain('CAP_SYS_ADMIN');
    // The mounts it now may make are notified to eci's vetter, never simply allowed.
    const profile = { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW' }] };
    const sc = runSteps(REWRITE_STEPS, dockerSpec({ linux: { namespaces: [], seccomp: profile } }), ctx).linux!.seccomp as { syscalls: { names: string[]; action: string }[] };
    const actions = (n: string) => sc.syscalls.filter((r) => r.names.includes(n)).map((r) => r.action);
    for (const n of ['mount', 'umount2', 'open_tree', 'move_mount', 'fsmount', 'mount_setattr']) expect(actions(n), n).toEqual(['SCMP_ACT_NOTIFY']);
    expect(actions('unshare')).toEqual(['SCMP_ACT_ALLOW']);
  });
});

describe('which process is systemd', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'eci-init-'));
    // Debian 12's merged /usr: /sbin -> usr/sbin, /usr/sbin/init -> ../lib/systemd/systemd.
    mkdirSync(join(root, 'usr/sbin'), { recursive: true });
    mkdirSync(join(root, 'usr/lib/systemd'), { recursive: true });
    mkdirSync(join(root, 'bin'));
    symlinkSync('usr/sbin', join(root, 'sbin'));
    symlinkSync('usr/lib', join(root, 'lib'));
    writeFileSync(join(root, 'usr/lib/systemd/systemd'), '');
    symlinkSync('../lib/systemd/systemd', join(root, 'usr/sbin/init'));
    writeFileSync(join(root, 'bin/busybox'), '');
    symlinkSync('/bin/busybox', join(root, 'usr/sbin/busybox-init'));
    symlinkSync('/../../../../etc/passwd', join(root, 'bin/escape'));
    symlinkSync('loop2', join(root, 'bin/loop1'));
    symlinkSync('loop1', join(root, 'bin/loop2'));
    writeFileSync(join(root, '.dockerenv'), '');
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const spec = (args: string[], env?: string[]) => dockerSpec({ process: { args, env } });

  it('follows symlinks without leaving the rootfs', () => {
    expect(resolveInRoot(root, '/sbin/init')).toBe('/usr/lib/systemd/systemd');
    expect(resolveInRoot(root, '/bin/escape')).toBeUndefined(); // /etc/passwd of the rootfs, which does not exist
    expect(resolveInRoot(root, '/bin/loop1')).toBeUndefined();
    expect(resolveInRoot(root, '/nope')).toBeUndefined();
  });

  it('is args[0] resolving to a file named systemd, also as a bare name on PATH', () => {
    const docker = { container: 'docker', cgroups: expect.stringMatching(/^(v1|hybrid|v2)$/) };
    expect(detectSystemInit(spec(['/sbin/init']), root)).toEqual(docker);
    expect(detectSystemInit(spec(['/lib/systemd/systemd', '--log-level=debug']), root)).toEqual(docker);
    expect(detectSystemInit(spec(['init'], ['PATH=/usr/bin:/sbin']), root)).toEqual(docker);
    expect(detectSystemInit(spec(['/usr/sbin/busybox-init']), root)).toBeUndefined();
    expect(detectSystemInit(spec(['/bin/sh']), root)).toBeUndefined();
    expect(detectSystemInit(spec(['sbin/init']), root)).toBeUndefined(); // relative: runc would not find it either
    expect(detectSystemInit(spec([]), root)).toBeUndefined();
  });
});

describe('cgroup delegation plan', () => {
  const id = 'abc';
  it('hands over the unified and name=systemd directories with cgroups(7) files, never a v1 controller', () => {
    const plan = delegationPlan({
      '': `/sys/fs/cgroup/unified/docker/${id}`, 'name=systemd': `/sys/fs/cgroup/systemd/docker/${id}`,
      memory: `/sys/fs/cgroup/memory/docker/${id}`, pids: `/sys/fs/cgroup/pids/docker/${id}`,
    });
    expect(plan).toEqual([
      { hierarchy: '', dir: `/sys/fs/cgroup/unified/docker/${id}`, files: ['cgroup.procs', 'cgroup.subtree_control', 'cgroup.threads'] },
      { hierarchy: 'name=systemd', dir: `/sys/fs/cgroup/systemd/docker/${id}`, files: ['cgroup.procs', 'tasks', 'cgroup.clone_children'] },
    ]);
    for (const d of plan) expect(d.files.some((f) => /max|limit|notify_on_release|release_agent/.test(f))).toBe(false);
  });

  it('on a cgroup v2 host, the container directory of the one hierarchy', () => {
    expect(delegationPlan({ '': `/sys/fs/cgroup/system.slice/docker-${id}.scope` })).toEqual([
      { hierarchy: '', dir: `/sys/fs/cgroup/system.slice/docker-${id}.scope`, files: ['cgroup.procs', 'cgroup.subtree_control', 'cgroup.threads'] },
    ]);
  });

  it('never a hierarchy root, a path outside /sys/fs/cgroup or one with ..', () => {
    expect(delegationPlan({ '': '/sys/fs/cgroup/unified', 'name=systemd': '/sys/fs/cgroup/systemd/' })).toEqual([]);
    expect(delegationPlan({ '': '/sys/fs/cgroup/unified/docker/../..', 'name=systemd': '/tmp/x/y' })).toEqual([]);
  });

  it("with controllers (an inner engine), each v1 controller's container directory first, wherever its hierarchy is mounted", () => {
    const v1 = ['cgroup.procs', 'tasks', 'cgroup.clone_children'];
    const plan = delegationPlan({
      '': `/sys/fs/cgroup/unified/docker/${id}`, cpu: `/sys/fs/cgroup/cpu,cpuacct/docker/${id}`,
      memory: `/sys/fs/cgroup/memory/docker/${id}`, 'name=systemd': `/sys/fs/cgroup/systemd/docker/${id}`,
    }, { controllers: true });
    expect(plan).toEqual([
      { hierarchy: 'cpu', dir: `/sys/fs/cgroup/cpu,cpuacct/docker/${id}`, files: v1 },
      { hierarchy: 'memory', dir: `/sys/fs/cgroup/memory/docker/${id}`, files: v1 },
      { hierarchy: '', dir: `/sys/fs/cgroup/unified/docker/${id}`, files: ['cgroup.procs', 'cgroup.subtree_control', 'cgroup.threads'] },
      { hierarchy: 'name=systemd', dir: `/sys/fs/cgroup/systemd/docker/${id}`, files: ['cgroup.procs', 'tasks', 'cgroup.clone_children'] },
    ]);
  });

  it('with controllers, never a controller hierarchy root, a path outside /sys/fs/cgroup or one with ..', () => {
    expect(delegationPlan({
      memory: '/sys/fs/cgroup/memory', pids: '/sys/fs/cgroup/pids/', cpu: '/sys/fs/cgroup/', blkio: '/sys/fs/cgroup',
      devices: '/tmp/devices/docker/x', freezer: '/sys/fs/cgroup/freezer/docker/../..', hugetlb: '/sys/fs/cgroup//hugetlb/x', perf_event: 'sys/fs/cgroup/perf_event/x',
    }, { controllers: true })).toEqual([]);
  });
});

describe('the launcher sends the stop signal instead of SIGTERM', () => {
  let dir: string;
  let fakeRunc: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'eci-kill-'));
    fakeRunc = join(dir, 'runc');
    writeFileSync(fakeRunc, '#!/bin/sh\necho "$@"\n');
    chmodSync(fakeRunc, 0o755);
    mkdirSync(join(dir, 'root/sd'), { recursive: true });
    mkdirSync(join(dir, 'root/plain'), { recursive: true });
    writeStopSignal(join(dir, 'root/sd'), 37);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const kill = (...args: string[]) => {
    const r = spawnSync(join(REPO, 'bin/eci-runc'), ['--root', join(dir, 'root'), 'kill', ...args], { env: { ...process.env, ECI_RUNC: fakeRunc, ECI_SOCKET: join(dir, 'none.sock') }, encoding: 'utf8' });
    return r.stdout.trim().split(' ').slice(3).join(' '); // after --root <dir> kill
  };

  it('for SIGTERM, by number or name, or no signal (runc defaults to SIGTERM)', () => {
    expect(kill('sd', '15')).toBe('sd 37');
    expect(kill('sd', 'SIGTERM')).toBe('sd 37');
    expect(kill('sd', 'TERM')).toBe('sd 37');
    expect(kill('sd')).toBe('sd 37');
    expect(kill('--all', 'sd', '15')).toBe('--all sd 37');
  });

  it('leaves other signals, and containers without a stop signal, alone', () => {
    expect(kill('sd', '9')).toBe('sd 9');
    expect(kill('sd', 'KILL')).toBe('sd KILL');
    expect(kill('plain', '15')).toBe('plain 15');
    expect(kill('../root/sd', '15')).toBe('../root/sd 15');
    expect(STOP_SIGNAL_FILE).toBe('eci-stop-signal'); // the name native/cmd/eci-runc.c reads
  });
});
