// System containers: workloads that manage containers or services themselves (an inner dockerd or
// containerd) get what Sysbox gives every container, without --privileged:
//   - every capability eci holds: inside the user namespace they reach only the container's own
//     namespaces, cgroup subtree and files (kernel modules, global sysctls, host devices stay out);
//   - the engine's seccomp profile, with the namespace and mount calls an engine needs allowed (the
//     list Sysbox adds to Docker's profile); the mount family then goes to eci's vetter like any
//     mount made inside, so read-only mounts stay read-only and host paths stay out of reach;
//   - its inner engine's data dirs (/var/lib/docker, /var/lib/containerd) on host-backed, idmapped
//     directories of eci's own (an overlay upper cannot hold an inner overlay's layers), removed with
//     the container. A mount the engine already put there (a volume) is left as it is.
// Pure: what the host does for the data dirs is the manager's (actors/manager/inner-data.ts).
import { basename } from 'node:path';
import type { OciMount } from '../policy/mounts.ts';
import { allowSyscalls } from '../runc/seccomp.ts';
import type { OciSpec } from '../runc/spec.ts';

/** Commands (basename of argv[0]) that make a container an engine workload. */
export const ENGINE_COMMANDS: ReadonlySet<string> = new Set(['dockerd', 'containerd', 'dockerd-entrypoint.sh']);

/** The inner engines' data dirs eci backs with host directories, by the name of their host dir. */
export const INNER_DATA_DIRS: Readonly<Record<string, string>> = { docker: '/var/lib/docker', containerd: '/var/lib/containerd' };

/**
 * Syscalls a system container's engine needs that Docker's default profile refuses to a container
 * without CAP_SYS_ADMIN (Sysbox's syscontSyscallWhitelist additions): allowed outright, taken out of
 * every argument-filtered or refusing rule (e.g. clone's namespace-flag filter).
 */
export const SYSTEM_SYSCALLS: readonly string[] = [
  'mount', 'umount', 'umount2', 'add_key', 'request_key', 'keyctl', 'pivot_root', 'gethostname', 'sethostname',
  'setns', 'unshare', 'chroot', 'clone', 'clone3', 'personality', 'arch_prctl', 'modify_ldt', 'close_range', 'openat2',
  'faccessat2', 'fsopen', 'fsconfig', 'fsmount', 'fspick', 'move_mount', 'open_tree', 'mount_setattr',
];

/** 'engine' when the container's command is an inner container engine; undefined otherwise. */
export function systemWorkload(spec: OciSpec): 'engine' | undefined {
  const argv0 = (spec.process as { args?: string[] } | undefined)?.args?.[0];
  return argv0 && ENGINE_COMMANDS.has(basename(argv0)) ? 'engine' : undefined;
}

/** The inner data dirs of an engine workload that the spec does not already mount something on. */
export function innerDataTargets(spec: OciSpec): { name: string; destination: string }[] {
  if (systemWorkload(spec) !== 'engine') return [];
  const taken = new Set(((spec.mounts ?? []) as OciMount[]).map((m) => m.destination.replace(/\/+$/, '')));
  return Object.entries(INNER_DATA_DIRS).filter(([, d]) => !taken.has(d)).map(([name, destination]) => ({ name, destination }));
}

/** The engine's profile with SYSTEM_SYSCALLS allowed, out of every filtered or refusing rule (no profile: nothing to open). */
export function allowSystemSyscalls(spec: OciSpec): OciSpec {
  return allowSyscalls(spec, SYSTEM_SYSCALLS, { dropFiltered: true });
}

/** Every capability eci holds, in the sets the spec names (inheritable and ambient stay as they are). */
export function allCapabilities(spec: OciSpec, held: Set<string>, order: readonly string[]): OciSpec {
  const caps = (spec.process as { capabilities?: Record<string, string[]> } | undefined)?.capabilities;
  if (!caps) return spec;
  const all = order.filter((c) => held.has(c));
  const next: Record<string, string[]> = { ...caps };
  for (const s of ['bounding', 'effective', 'permitted'] as const) if (Array.isArray(caps[s])) next[s] = all;
  return { ...spec, process: { ...spec.process, capabilities: next } };
}

/** The data-dir mounts eci adds (sources are the manager's idmapped binds, see withBinds). */
export function innerDataMounts(targets: readonly { destination: string }[], sources: readonly string[]): OciMount[] {
  return targets.map((t, i) => ({ destination: t.destination, type: 'bind', source: sources[i], options: ['rbind', 'rw', 'nosuid', 'nodev'] }));
}
