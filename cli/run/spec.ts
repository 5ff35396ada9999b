// The config.json `eci run` writes: Docker's defaults (capabilities, masked and read-only paths,
// /dev, /dev/pts, /dev/shm, /sys, cgroup, env PATH, hostname), the image's config, then the flags.
// Pure. The manager then applies every eci rule to it exactly as to an engine's spec (user
// namespace and range, vetted binds, /proc emulation, refusals of host namespaces).
import { EciError } from '../../actors/errors.ts';
import { CAP_NAMES } from '../../actors/runc/caps.ts';
import type { OciSpec } from '../../actors/runc/spec.ts';
import type { ImageConfig } from '../images/store.ts';
import type { RunOptions } from './flags.ts';
import { defaultSeccomp } from './seccomp.ts';

/** Docker's default capability set (moby oci/caps/defaults.go). */
export const DEFAULT_CAPS = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

export const MASKED_PATHS = [
  '/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
];
export const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Every namespace a container gets; `user` is added by the manager. */
const NAMESPACES = ['pid', 'network', 'ipc', 'uts', 'mount', 'cgroup'];

export interface SpecInputs {
  id: string;
  opts: RunOptions;
  image: ImageConfig;
  /** Bundle-relative files for /etc/hostname and /etc/hosts (Docker's per-container files). */
  hostnameFile: string;
  hostsFile: string;
}

/** Applies --cap-add/--cap-drop (Docker's order: ALL in drop first, then adds win). */
export function capabilities(opts: RunOptions): string[] {
  if (opts.privileged) return [...CAP_NAMES];
  let caps = opts.capDrop.includes('ALL') ? [] : DEFAULT_CAPS.filter((c) => !opts.capDrop.includes(c));
  if (opts.capAdd.includes('ALL')) caps = [...CAP_NAMES];
  for (const c of opts.capAdd) if (c !== 'ALL' && !caps.includes(c)) caps.push(c);
  return caps;
}

/** KEY=VALUE lists merged by key, later ones winning, order of first appearance kept. */
export function mergeEnv(...lists: string[][]): string[] {
  const m = new Map<string, string>();
  for (const l of lists) for (const kv of l) m.set(kv.split('=')[0], kv);
  return [...m.values()];
}

function imageUser(u: string | undefined): { uid: number; gid: number } {
  if (!u || u === 'root' || u === '0' || u === '0:0') return { uid: 0, gid: 0 };
  const m = /^(\d+)(?::(\d+))?$/.exec(u);
  if (!m || Number(m[1]) > 65535 || Number(m[2] ?? m[1]) > 65535) throw new EciError('EIMAGE', `image user ${JSON.stringify(u)}: eci run takes numeric UID[:GID] from 0 to 65535 (use --user)`);
  return { uid: Number(m[1]), gid: Number(m[2] ?? m[1]) };
}

export function buildSpec(x: SpecInputs): OciSpec {
  const { opts, image } = x;
  const entrypoint = opts.entrypoint !== undefined ? (opts.entrypoint ? [opts.entrypoint] : []) : (image.entrypoint ?? []);
  const cmd = opts.cmd.length ? opts.cmd : (opts.entrypoint !== undefined ? [] : (image.cmd ?? []));
  const args = [...entrypoint, ...cmd];
  if (!args.length) throw new EciError('ENOCMD', 'no command specified (the image has none: give one after the image name)');
  const hostname = opts.hostname ?? x.id.slice(0, 12);
  const caps = capabilities(opts);
  const hasPath = (image.env ?? []).some((e) => e.startsWith('PATH='));
  const env = mergeEnv(hasPath ? [] : [DEFAULT_PATH], [`HOSTNAME=${hostname}`], opts.tty ? ['TERM=xterm'] : [], image.env ?? [], opts.env);
  const ro = opts.privileged ? [] : ['ro'];
  const mounts = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', ...ro] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', ...ro] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=67108864'] },
    { destination: '/etc/hostname', type: 'bind', source: x.hostnameFile, options: ['rbind', 'rprivate'] },
    { destination: '/etc/hosts', type: 'bind', source: x.hostsFile, options: ['rbind', 'rprivate'] },
    ...opts.volumes.map((v) => ({ destination: v.destination, type: 'bind', source: v.source, options: ['rbind', 'rprivate', ...(v.readonly ? ['ro'] : [])] })),
  ];
  const user = opts.user ?? imageUser(image.user);
  const resources: Record<string, unknown> = { devices: [{ allow: false, access: 'rwm' }] };
  if (opts.memory !== undefined) resources.memory = { limit: opts.memory };
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: opts.tty,
      user: { uid: user.uid, gid: user.gid },
      args,
      env,
      cwd: opts.workdir ?? image.workingDir ?? '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      // containerd's default; the manager lowers it to its own hard limit.
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1048576, soft: 1048576 }],
      noNewPrivileges: false,
    },
    root: { path: 'rootfs', readonly: false },
    hostname,
    mounts,
    linux: {
      namespaces: NAMESPACES.filter((n) => !opts.hostNamespaces.includes(n)).map((type) => ({ type })),
      cgroupsPath: `/eci-run/${x.id}`,
      resources,
      ...(opts.privileged ? {} : { maskedPaths: MASKED_PATHS, readonlyPaths: READONLY_PATHS, seccomp: defaultSeccomp(caps) }),
    },
  };
}
