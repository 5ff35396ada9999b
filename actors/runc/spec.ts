// Checks and rewrites an OCI config.json for eci. Pure: host facts come in as arguments.
import { EciError } from '../errors.ts';
import type { IdRange } from '../../statecharts/events.ts';

export type { IdRange } from '../../statecharts/events.ts';

export interface Namespace { type: string; path?: string }

/** The part of an OCI spec eci reads or writes; everything else is carried through untouched. */
export interface OciSpec {
  ociVersion?: string;
  root?: { path?: string; readonly?: boolean };
  process?: Record<string, unknown>;
  mounts?: unknown[];
  linux?: {
    namespaces?: Namespace[];
    uidMappings?: { containerID: number; hostID: number; size: number }[];
    gidMappings?: { containerID: number; hostID: number; size: number }[];
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

/** Namespaces a container must own. `user` is always added by eci and is not checked here. */
export const REQUIRED_NAMESPACES = ['pid', 'ipc', 'uts', 'mount'] as const;

export const hostNamespacesMessage = (names: string[]) =>
  `eci containers can't share namespaces [${names.join(' ')}] with the host (because they use the linux user-namespace for isolation)`;
export const hostNetworkMessage =
  "eci containers can't share a network namespace with the host (because they use the linux user-namespace for isolation)";

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** Parses config.json text; a malformed file is a one-line error naming the problem. */
export function parseSpec(text: string, where: string): OciSpec {
  let spec: unknown;
  try {
    spec = JSON.parse(text);
  } catch (e) {
    throw new EciError('EBADSPEC', `${where}: not valid JSON (${(e as Error).message})`);
  }
  if (!spec || typeof spec !== 'object' || Array.isArray(spec)) throw new EciError('EBADSPEC', `${where}: expected a JSON object`);
  const s = spec as OciSpec;
  if (!s.root || typeof s.root !== 'object' || typeof s.root.path !== 'string' || s.root.path === '') {
    throw new EciError('EBADSPEC', `${where}: root.path: expected a non-empty string`);
  }
  if (!s.linux || typeof s.linux !== 'object') throw new EciError('EBADSPEC', `${where}: linux: expected an object (eci runs Linux containers only)`);
  const ns = s.linux.namespaces;
  if (ns !== undefined && (!Array.isArray(ns) || ns.some((n) => !n || typeof n !== 'object' || typeof n.type !== 'string' || (n.path !== undefined && typeof n.path !== 'string')))) {
    throw new EciError('EBADSPEC', `${where}: linux.namespaces: expected an array of {type, path?}`);
  }
  if (s.process !== undefined && (typeof s.process !== 'object' || s.process === null)) {
    throw new EciError('EBADSPEC', `${where}: process: expected an object`);
  }
  if (s.mounts !== undefined && !Array.isArray(s.mounts)) throw new EciError('EBADSPEC', `${where}: mounts: expected an array`);
  (s.mounts ?? []).forEach((m, i) => {
    const o = m as { destination?: unknown; type?: unknown; source?: unknown; options?: unknown };
    if (!o || typeof o !== 'object' || typeof o.destination !== 'string') throw new EciError('EBADSPEC', `${where}: mounts[${i}]: expected an object with a string destination`);
    if ((o.type !== undefined && typeof o.type !== 'string') || (o.source !== undefined && typeof o.source !== 'string')) throw new EciError('EBADSPEC', `${where}: mounts[${i}]: type and source must be strings`);
    if (o.options !== undefined && !isStrings(o.options)) throw new EciError('EBADSPEC', `${where}: mounts[${i}].options: expected an array of strings`);
  });
  const l = s.linux as Record<string, unknown>;
  for (const k of ['maskedPaths', 'readonlyPaths']) {
    if (l[k] !== undefined && !isStrings(l[k])) throw new EciError('EBADSPEC', `${where}: linux.${k}: expected an array of strings`);
  }
  if (l.sysctl !== undefined && (!l.sysctl || typeof l.sysctl !== 'object' || Object.values(l.sysctl).some((v) => typeof v !== 'string'))) {
    throw new EciError('EBADSPEC', `${where}: linux.sysctl: expected an object of strings`);
  }
  if (l.seccomp !== undefined && l.seccomp !== null) {
    const sc = l.seccomp as { defaultAction?: unknown; syscalls?: unknown; architectures?: unknown };
    if (typeof sc !== 'object' || typeof sc.defaultAction !== 'string') throw new EciError('EBADSPEC', `${where}: linux.seccomp.defaultAction: expected a string`);
    if (sc.architectures !== undefined && !isStrings(sc.architectures)) throw new EciError('EBADSPEC', `${where}: linux.seccomp.architectures: expected an array of strings`);
    if (sc.syscalls !== undefined && (!Array.isArray(sc.syscalls) || sc.syscalls.some((r) => !r || typeof r !== 'object' || typeof (r as { action?: unknown }).action !== 'string' || ((r as { names?: unknown }).names !== undefined && !isStrings((r as { names?: unknown }).names))))) {
      throw new EciError('EBADSPEC', `${where}: linux.seccomp.syscalls: expected an array of {names, action}`);
    }
  }
  const rl = (s.process as { rlimits?: unknown } | undefined)?.rlimits;
  if (rl !== undefined && (!Array.isArray(rl) || rl.some((r) => !r || typeof r !== 'object' || typeof r.type !== 'string' || typeof r.hard !== 'number' || typeof r.soft !== 'number'))) {
    throw new EciError('EBADSPEC', `${where}: process.rlimits: expected an array of {type, hard, soft}`);
  }
  const caps = (s.process as { capabilities?: unknown } | undefined)?.capabilities;
  if (caps !== undefined && (!caps || typeof caps !== 'object' || Object.values(caps).some((v) => v !== undefined && !isStrings(v)))) {
    throw new EciError('EBADSPEC', `${where}: process.capabilities: expected arrays of capability names`);
  }
  return s;
}

/**
 * Refuses specs that share a host namespace: a required namespace that is missing, or one whose
 * path is the host's own. `isHostNamespace(type, path)` answers from the host (stat of /proc/1/ns).
 */
export function checkNamespaces(spec: OciSpec, isHostNamespace: (type: string, path: string) => boolean): void {
  const ns = spec.linux?.namespaces ?? [];
  const find = (t: string) => ns.find((n) => n.type === t);
  const shared = (t: string) => {
    const n = find(t);
    return !n || (n.path !== undefined && n.path !== '' && isHostNamespace(t, n.path));
  };
  // Network first: Docker's --network=host is the commonest way to ask for a host namespace.
  if (shared('network')) throw new EciError('EHOSTNS', hostNetworkMessage);
  const bad = REQUIRED_NAMESPACES.filter(shared);
  if (bad.length) throw new EciError('EHOSTNS', hostNamespacesMessage(bad));
}

/**
 * Returns a copy of the spec with eci's user namespace: always a new one (a requested path,
 * e.g. the host's, is dropped), mapped 0 -> the container's exclusive range.
 */
export function applyUserNamespace(spec: OciSpec, uid: IdRange, gid: IdRange): OciSpec {
  const namespaces = (spec.linux?.namespaces ?? []).filter((n) => n.type !== 'user');
  namespaces.push({ type: 'user' });
  return {
    ...spec,
    linux: {
      ...spec.linux,
      namespaces,
      uidMappings: [{ containerID: 0, hostID: uid.hostID, size: uid.size }],
      gidMappings: [{ containerID: 0, hostID: gid.hostID, size: gid.size }],
    },
  };
}

/**
 * Sysctls whose values are ids must name ids of the container's user namespace, or the kernel
 * answers EINVAL (Docker sets net.ipv4.ping_group_range to "0 2147483647"). Clamps into 0..size-1.
 */
export function clampIdSysctls(spec: OciSpec, gidSize: number): OciSpec {
  const sysctl = spec.linux?.sysctl as Record<string, string> | undefined;
  const v = sysctl?.['net.ipv4.ping_group_range'];
  if (typeof v !== 'string') return spec;
  const parts = v.trim().split(/\s+/).map(Number);
  if (parts.length !== 2 || parts.some((n) => !Number.isInteger(n))) {
    throw new EciError('EBADSPEC', `linux.sysctl["net.ipv4.ping_group_range"]: expected two integers, got ${JSON.stringify(v)}`);
  }
  const clamp = (n: number) => Math.min(Math.max(n, 0), gidSize - 1);
  return { ...spec, linux: { ...spec.linux, sysctl: { ...sysctl, 'net.ipv4.ping_group_range': `${clamp(parts[0])} ${clamp(parts[1])}` } } };
}

/**
 * Docker passes `--domainname` as the sysctl kernel.domainname, which runc writes to /proc/sys from
 * inside the container: refused (EACCES) in a user namespace on 6.x, although the UTS namespace is the
 * container's. The OCI `hostname`/`domainname` fields set the same values with sethostname(2) and
 * setdomainname(2), which container root may do; the sysctls become those fields (a field already
 * set wins).
 */
export function utsSysctlsAsFields(spec: OciSpec): OciSpec {
  const sysctl = spec.linux?.sysctl as Record<string, string> | undefined;
  if (!sysctl || (!('kernel.hostname' in sysctl) && !('kernel.domainname' in sysctl))) return spec;
  const { 'kernel.hostname': hostname, 'kernel.domainname': domainname, ...rest } = sysctl;
  const out: OciSpec = { ...spec, linux: { ...spec.linux, sysctl: rest } };
  const fields = out as { hostname?: string; domainname?: string };
  if (hostname !== undefined && fields.hostname === undefined) fields.hostname = hostname;
  if (domainname !== undefined && fields.domainname === undefined) fields.domainname = domainname;
  return out;
}

export function withRootPath(spec: OciSpec, path: string): OciSpec {
  return { ...spec, root: { ...spec.root, path } };
}

/** An OCI rlimit entry (process.rlimits[]). */
export interface Rlimit { type: string; hard: number; soft: number }

// /proc/<pid>/limits row titles -> OCI rlimit names (the kernel's order, fs/proc/base.c).
const LIMIT_ROWS: Record<string, string> = {
  'Max cpu time': 'RLIMIT_CPU', 'Max file size': 'RLIMIT_FSIZE', 'Max data size': 'RLIMIT_DATA',
  'Max stack size': 'RLIMIT_STACK', 'Max core file size': 'RLIMIT_CORE', 'Max resident set': 'RLIMIT_RSS',
  'Max processes': 'RLIMIT_NPROC', 'Max open files': 'RLIMIT_NOFILE', 'Max locked memory': 'RLIMIT_MEMLOCK',
  'Max address space': 'RLIMIT_AS', 'Max file locks': 'RLIMIT_LOCKS', 'Max pending signals': 'RLIMIT_SIGPENDING',
  'Max msgqueue size': 'RLIMIT_MSGQUEUE', 'Max nice priority': 'RLIMIT_NICE', 'Max realtime priority': 'RLIMIT_RTPRIO',
  'Max realtime timeout': 'RLIMIT_RTTIME',
};

/** The hard limits in a /proc/<pid>/limits text, by OCI name (`unlimited` is Infinity). */
export function parseHardLimits(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const title = Object.keys(LIMIT_ROWS).find((t) => line.startsWith(t));
    if (!title) continue;
    const hard = line.slice(title.length).trim().split(/\s+/)[1];
    if (hard === 'unlimited') out[LIMIT_ROWS[title]] = Infinity;
    else if (hard !== undefined && /^\d+$/.test(hard)) out[LIMIT_ROWS[title]] = Number(hard);
  }
  return out;
}

/**
 * Lowers each process.rlimits entry to the runtime's own hard limit (like capabilities: a spec may
 * ask only for what eci holds). runc sets rlimits inside the user namespace, where raising a hard
 * limit needs CAP_SYS_RESOURCE over the host, so a larger request (Podman's nofile 1048576) would
 * fail the whole create with "error setting rlimit type 7". soft is kept at most hard.
 * Limits the host does not report are left as asked (the kernel then decides).
 */
export function clampRlimits(spec: OciSpec, hardLimits: Record<string, number>): OciSpec {
  const rl = (spec.process as { rlimits?: unknown } | undefined)?.rlimits;
  if (!Array.isArray(rl)) return spec;
  return { ...spec, process: clampProcessRlimits(spec.process!, hardLimits) };
}

/** clampRlimits for a bare process object (the `runc exec --process` file). */
export function clampProcessRlimits<P extends Record<string, unknown>>(proc: P, hardLimits: Record<string, number>): P {
  const rl = proc.rlimits;
  if (!Array.isArray(rl)) return proc;
  const rlimits = rl.map((r: Rlimit) => {
    if (!r || typeof r !== 'object' || typeof r.type !== 'string' || typeof r.hard !== 'number' || typeof r.soft !== 'number') {
      throw new EciError('EBADSPEC', `process.rlimits: expected an array of {type, hard, soft}`);
    }
    const max = hardLimits[r.type];
    if (max === undefined || !Number.isFinite(max)) return r;
    const hard = Math.min(r.hard, max);
    return { ...r, hard, soft: Math.min(r.soft, hard) };
  });
  return { ...proc, rlimits };
}
