// What a container whose process is systemd gets, following systemd's container interface
// (systemd.io/CONTAINER_INTERFACE) and what Podman and Sysbox do for /sbin/init. Pure: whether the
// process is systemd is decided on the host (actors/system-init.ts) and comes in as `SystemInit`.
// Each function is one named rewrite step (spec/rewrite.ts); with no SystemInit it changes nothing.
// The cgroup steps read only a CgroupView, which an inner engine gets too (system-container.ts).
import { isBind, type OciMount } from '../policy/mounts.ts';
import { allowSyscalls } from '../runc/seccomp.ts';
import type { OciSpec } from '../runc/spec.ts';

/** How the host mounts its cgroups: v1 controllers, v1 with cgroup2 at /sys/fs/cgroup/unified, or cgroup2 alone. */
export type CgroupLayout = 'v1' | 'hybrid' | 'v2';

/** What the cgroup steps read, for a container that gets its own cgroup view (systemd, an inner engine). */
export interface CgroupView {
  /**
   * The host's cgroup layout: on a hybrid host (v1 controllers, cgroup2 at /sys/fs/cgroup/unified)
   * the container gets its cgroup2 view at the same place, which runc 1.1 does not mount itself.
   */
  cgroups?: CgroupLayout;
}

export interface SystemInit extends CgroupView {
  /** The value of `container=` for PID 1 when the engine did not set one. */
  container: string;
}

/** The cgroup2 view of a hybrid host, in the container's cgroup namespace (its delegated unified cgroup). */
export const UNIFIED_MOUNT: OciMount = Object.freeze({ destination: '/sys/fs/cgroup/unified', type: 'cgroup2', source: 'cgroup2', options: ['nosuid', 'noexec', 'nodev', 'relatime'] });

/** SIGRTMIN+3 as systemd counts it (glibc's SIGRTMIN is 34): halt, the container interface's stop signal. */
export const SYSTEMD_STOP_SIGNAL = 37;

/** systemd's own mounts at these paths are its API file systems; eci gives it a tmpfs first, as Docker's --tmpfs does. */
export const RUN_TMPFS: readonly OciMount[] = Object.freeze([
  { destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['rw', 'nosuid', 'nodev', 'mode=755', 'size=65536k'] },
  { destination: '/run/lock', type: 'tmpfs', source: 'tmpfs', options: ['rw', 'nosuid', 'nodev', 'noexec', 'size=4096k'] },
]);

const mountsOf = (spec: OciSpec) => (spec.mounts ?? []) as OciMount[];

/**
 * A private cgroup namespace: systemd reads its own cgroup from /proc/self/cgroup and must find it as
 * the root of /sys/fs/cgroup (Docker's default on a v1 or hybrid host is the host's namespace).
 */
export function withCgroupNamespace(spec: OciSpec, view: CgroupView | undefined): OciSpec {
  const ns = spec.linux?.namespaces ?? [];
  if (!view || ns.some((n) => n.type === 'cgroup')) return spec;
  return { ...spec, linux: { ...spec.linux, namespaces: [...ns, { type: 'cgroup' }] } };
}

/**
 * CAP_SYS_ADMIN (in the container's user namespace only): systemd mounts its API file systems and
 * the unified cgroup hierarchy, and its units' sandboxing (PrivateTmp=, ProtectSystem=...) makes
 * mount namespaces. Every mount it makes still goes through eci's vetter.
 */
export function withSysAdmin(spec: OciSpec, init: SystemInit | undefined): OciSpec {
  const caps = (spec.process as { capabilities?: Record<string, string[]> } | undefined)?.capabilities;
  if (!init || !caps) return spec;
  const next: Record<string, string[]> = { ...caps };
  for (const s of ['bounding', 'effective', 'permitted'] as const) {
    if (Array.isArray(caps[s]) && !caps[s].includes('CAP_SYS_ADMIN')) next[s] = [...caps[s], 'CAP_SYS_ADMIN'];
  }
  return { ...spec, process: { ...spec.process, capabilities: next } };
}

/**
 * tmpfs on /run and /run/lock (nosuid,nodev; /run/lock noexec), before any mount under /run so the
 * engine's own binds there stay visible. A mount the engine already has at either path wins.
 */
export function withRunTmpfs(spec: OciSpec, init: SystemInit | undefined): OciSpec {
  if (!init) return spec;
  const mounts = mountsOf(spec);
  const add = RUN_TMPFS.filter((t) => !mounts.some((m) => m.destination === t.destination));
  if (!add.length) return spec;
  // After the engine's own /run if it has one, before anything it mounts below /run.
  const from = mounts.findIndex((m) => m.destination === '/run') + 1;
  const below = mounts.findIndex((m, i) => i >= from && m.destination.startsWith('/run/'));
  const at = below < 0 ? mounts.length : below;
  const out = [...mounts.slice(0, at), ...add, ...mounts.slice(at)];
  return { ...spec, mounts: out.map((m) => ({ ...m, options: m.options && [...m.options] })) };
}

/**
 * /sys read-only (systemd and udevd then leave devices alone), and /sys/fs/cgroup mounted without
 * `ro`, so that the subtree eci delegates to container root (cgroup-delegation.ts) is writable:
 * the rest of each hierarchy stays owned by host root, unwritable for the container. On a hybrid
 * host, also the unified hierarchy (systemd >= 256 boots only with a cgroup2 view).
 */
export function withSysMounts(spec: OciSpec, view: CgroupView | undefined): OciSpec {
  if (!view) return spec;
  let mounts = mountsOf(spec).map((m) => {
    if (m.destination === '/sys' && m.type === 'sysfs' && !(m.options ?? []).includes('ro')) {
      return { ...m, options: [...(m.options ?? []).filter((o) => o !== 'rw'), 'ro'] };
    }
    if (m.destination === '/sys/fs/cgroup' && m.type === 'cgroup') return { ...m, options: (m.options ?? []).filter((o) => o !== 'ro') };
    return m;
  });
  if (mounts.some((m) => m.destination === '/sys') && !mounts.some((m) => m.destination === '/sys/fs/cgroup')) {
    const at = mounts.findIndex((m) => m.destination === '/sys') + 1;
    mounts = [...mounts.slice(0, at), { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime'] }, ...mounts.slice(at)];
  }
  const cg = mounts.findIndex((m) => m.destination === '/sys/fs/cgroup' && m.type === 'cgroup');
  if (view.cgroups === 'hybrid' && cg >= 0 && !mounts.some((m) => m.destination === UNIFIED_MOUNT.destination)) {
    mounts = [...mounts.slice(0, cg + 1), { ...UNIFIED_MOUNT, options: [...UNIFIED_MOUNT.options!] }, ...mounts.slice(cg + 1)];
  }
  return { ...spec, mounts };
}

/**
 * The syscalls Docker's default seccomp profile lets through only with CAP_SYS_ADMIN, that systemd
 * uses: its own mounts and its units' sandboxing (a mount namespace per PrivateTmp=/ProtectSystem=
 * unit: unshare, clone with namespace flags, then mounts), hostnamed, and cgroup ids
 * (name_to_handle_at; open_by_handle_at stays refused). The mount family among them is then
 * notified to eci's vetter by the seccomp-notify step, like any mount; the rest act only on
 * namespaces the container's user namespace owns. bpf, perf_event_open, syslog, quotactl,
 * fanotify_init and lookup_dcookie stay as the engine's profile says.
 */
export const INIT_SYSCALLS: readonly string[] = Object.freeze([
  'mount', 'umount', 'umount2', 'fsopen', 'fsconfig', 'fsmount', 'fspick', 'open_tree', 'move_mount', 'mount_setattr',
  'unshare', 'setns', 'clone', 'sethostname', 'setdomainname', 'name_to_handle_at',
]);

/**
 * Lets INIT_SYSCALLS through the engine's profile (Docker computed it for the capabilities it gave,
 * without CAP_SYS_ADMIN): one unconditional ALLOW rule for those it did not allow unconditionally;
 * Docker's ENOSYS/EPERM rules naming them would conflict and lose them, its allow rules stay.
 */
export function withInitSyscalls(spec: OciSpec, init: SystemInit | undefined): OciSpec {
  return init ? allowSyscalls(spec, INIT_SYSCALLS) : spec;
}

/**
 * Drops an engine's bind mounts of host cgroup trees under /sys/fs/cgroup (Podman's systemd mode on
 * cgroup v1 binds the host's whole name=systemd hierarchy there, as Sysbox drops them too): the
 * container's cgroup mount, rooted at its own cgroup by its cgroup namespace, provides those paths,
 * and only its delegated part is writable. Masked or read-only paths under them stay as asked.
 */
export function withoutEngineCgroupBinds(spec: OciSpec, init: SystemInit | undefined): OciSpec {
  if (!init) return spec;
  const mounts = mountsOf(spec);
  const keep = mounts.filter((m) => !(m.destination.startsWith('/sys/fs/cgroup/') && isBind(m) && /^\/sys\/fs\/cgroup(\/|$)/.test(m.source ?? '')));
  return keep.length === mounts.length ? spec : { ...spec, mounts: keep };
}

/** `container=<engine>` for PID 1 (systemd copies it to /run/systemd/container); an engine's own value wins. */
export function withContainerEnv(spec: OciSpec, init: SystemInit | undefined): OciSpec {
  const env = (spec.process as { env?: string[] } | undefined)?.env ?? [];
  if (!init || env.some((e) => e.startsWith('container='))) return spec;
  return { ...spec, process: { ...spec.process, env: [...env, `container=${init.container}`] } };
}
