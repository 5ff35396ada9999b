// The rewrite of a container's config.json once eci holds its range and its idmapped rootfs: named
// steps in order, each a pure function of the spec and of what eci decided for the container.
import { join } from 'node:path';
import type { OciMount } from '../policy/mounts.ts';
import type { BindPlan } from '../rootfs.ts';
import { CAP_NAMES, clampCapabilities } from '../runc/caps.ts';
import { allCapabilities, allowSystemSyscalls } from './system-container.ts';
import { addNotifyRules } from '../runc/seccomp.ts';
import { withNativeSetkey } from './docker-setkey.ts';
import { applyUserNamespace, clampIdSysctls, clampRlimits, utsSysctlsAsFields, withRootPath, type IdRange, type OciSpec } from '../runc/spec.ts';
import type { SpecStep } from './steps.ts';
import { withCgroupNamespace, withContainerEnv, withInitSyscalls, withRunTmpfs, withSysAdmin, withSysMounts, type CgroupView, type SystemInit } from './system-init.ts';

export interface RewriteContext {
  /** The container id (the seccomp listener's metadata). */
  id: string;
  uid: IdRange;
  gid: IdRange;
  /** The idmapped rootfs eci mounted for the container. */
  rootfs: string;
  /** The volumes eci idmapped, by spec mount index. */
  binds: readonly BindPlan[];
  /** eci's emulated /proc files (emulatedProcMounts). */
  procMounts: readonly OciMount[];
  /** The capabilities eci itself holds (its bounding set). */
  heldCapabilities: Set<string>;
  /** eci's own hard rlimits, by OCI name. */
  hardLimits: Record<string, number>;
  /** The seccomp agent socket runc connects to. */
  seccompSocket: string;
  /** eci-setkey's absolute path, to run Docker's libnetwork-setkey hook (docker-setkey.ts); absent: Docker's own runs. */
  setkeyHook?: string;
  /** Whether file-creating calls are vetted too (see setuid-exposure.ts). */
  createRules: boolean;
  /** A system container's workload (system-container.ts): all held capabilities, engine syscalls allowed. */
  system?: 'engine';
  /** The user namespace of the group the container joins (checks.ts shared-namespaces); uid/gid are then the group's range. */
  groupUserns?: string;
  /** Set when the container's process is systemd (actors/system-init.ts): the init-* steps apply. */
  systemInit?: SystemInit;
  /** An inner engine's cgroup view (system-container.ts): the cgroup steps of systemd apply to it too. */
  engineCgroups?: CgroupView;
}

/**
 * A container joining its group's namespaces joins the group's user namespace too: the namespaces it
 * joins belong to that user namespace, so only there may its runc mount sysfs or write hosts and
 * resolv.conf. The mappings stay (the group's range): runc 1.1.5 wants them and writes none when joining.
 */
export function joinGroupUserns(spec: OciSpec, path: string | undefined): OciSpec {
  if (!path) return spec;
  const namespaces = (spec.linux?.namespaces ?? []).map((n) => (n.type === 'user' ? { type: 'user', path } : n));
  return { ...spec, linux: { ...spec.linux, namespaces } };
}

/** Files eci emulates under /proc, bind-mounted from its FUSE server (runc allows these targets). */
export const EMULATED_PROC_FILES = ['uptime', 'swaps', 'meminfo', 'cpuinfo', 'stat', 'loadavg', 'diskstats'] as const;

/** The bind mounts that put eci's emulated files over the container's /proc (none without a /proc mount). */
export function emulatedProcMounts(spec: OciSpec, dir: string | undefined): OciMount[] {
  const mounts = (spec.mounts ?? []) as OciMount[];
  if (!dir || !mounts.some((m) => m.destination === '/proc' && m.type === 'proc')) return [];
  return EMULATED_PROC_FILES
    .filter((f) => !mounts.some((m) => m.destination === `/proc/${f}`))
    .map((f) => ({ destination: `/proc/${f}`, type: 'bind', source: join(dir, f), options: ['rbind', 'ro'] }));
}

export function withMounts(spec: OciSpec, extra: readonly OciMount[]): OciSpec {
  return extra.length ? { ...spec, mounts: [...((spec.mounts ?? []) as OciMount[]), ...extra] } : spec;
}

/** Points each idmapped bind's spec mount at eci's mount, with the flags it already carries. */
export function withBinds(spec: OciSpec, binds: readonly BindPlan[]): OciSpec {
  if (!binds.length) return spec;
  const mounts = [...((spec.mounts ?? []) as OciMount[])];
  for (const b of binds) {
    const m = mounts[b.index];
    const extra = [b.nosuid ? 'nosuid' : '', b.nodev ? 'nodev' : ''].filter((o) => o && !(m.options ?? []).includes(o));
    mounts[b.index] = { ...m, source: b.target, options: [...(m.options ?? []), ...extra] };
  }
  return { ...spec, mounts };
}

export const REWRITE_STEPS: readonly SpecStep<RewriteContext>[] = [
  // Always a new user namespace, mapped 0 -> the container's exclusive range.
  { name: 'user-namespace', run: (s, c) => applyUserNamespace(s, c.uid, c.gid) },
  // ... or, for a member of a group, the group's user namespace (same range).
  { name: 'group-user-namespace', run: (s, c) => joinGroupUserns(s, c.groupUserns) },
  // kernel.hostname/domainname sysctls become the OCI fields (runc's /proc/sys write is refused in a userns).
  { name: 'uts-sysctls', run: (s) => utsSysctlsAsFields(s) },
  // Sysctls holding ids (ping_group_range) name ids of the container's range.
  { name: 'id-sysctls', run: (s, c) => clampIdSysctls(s, c.gid.size) },
  // A system container (an inner engine) gets every capability eci holds and the syscalls an engine needs.
  { name: 'system-container', run: (s, c) => (c.system ? allowSystemSyscalls(allCapabilities(s, c.heldCapabilities, CAP_NAMES)) : s) },
  // systemd as PID 1 mounts its API file systems and sandboxes units: CAP_SYS_ADMIN in its user namespace.
  { name: 'init-sys-admin', run: (s, c) => withSysAdmin(s, c.systemInit) },
  // At most the capabilities eci holds.
  { name: 'capabilities', run: (s, c) => clampCapabilities(s, c.heldCapabilities) },
  // At most eci's own hard rlimits (runc cannot raise them inside the userns).
  { name: 'rlimits', run: (s, c) => clampRlimits(s, c.hardLimits) },
  // The rootfs is eci's idmapped mount.
  { name: 'root-path', run: (s, c) => withRootPath(s, c.rootfs) },
  // Volumes come from eci's idmapped binds.
  { name: 'volumes', run: (s, c) => withBinds(s, c.binds) },
  // eci's emulated /proc files over the container's /proc.
  { name: 'proc-files', run: (s, c) => withMounts(s, c.procMounts) },
  // systemd as PID 1 (systemd.io/CONTAINER_INTERFACE): its own cgroup namespace, tmpfs /run and
  // /run/lock, read-only /sys with a writable cgroup mount (only the delegated subtree is its), container=.
  { name: 'init-cgroupns', run: (s, c) => withCgroupNamespace(s, c.systemInit ?? c.engineCgroups) },
  { name: 'init-run-tmpfs', run: (s, c) => withRunTmpfs(s, c.systemInit) },
  { name: 'init-sys-mounts', run: (s, c) => withSysMounts(s, c.systemInit ?? c.engineCgroups) },
  { name: 'init-container-env', run: (s, c) => withContainerEnv(s, c.systemInit) },
  // ...and the syscalls Docker's profile keeps for CAP_SYS_ADMIN holders (mounts then notified below).
  { name: 'init-syscalls', run: (s, c) => withInitSyscalls(s, c.systemInit) },
  // Docker's libnetwork-setkey hook runs eci's C equivalent instead of the whole dockerd binary again.
  { name: 'docker-setkey', run: (s, c) => withNativeSetkey(s, c.setkeyHook) },
  // The mount/chmod/... families go to eci's seccomp agent.
  { name: 'seccomp-notify', run: (s, c) => addNotifyRules(s, c.seccompSocket, c.id, { createRules: c.createRules }) },
];
