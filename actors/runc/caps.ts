// Capabilities: a spec may ask only for what the runtime itself holds. runc alone refuses
// --privileged on hosts whose bounding set lacks a capability ("unable to apply caps"); eci grants
// every capability it holds instead (as Sysbox does). Inside the user namespace they only reach
// the container's own resources.
import type { OciSpec } from './spec.ts';

/** Linux capability names by number (include/uapi/linux/capability.h). */
export const CAP_NAMES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN',
  'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ',
  'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
] as const;

/** The capability names in a /proc/<pid>/status hex mask (e.g. CapBnd). */
export function capsFromMask(hex: string): Set<string> {
  const mask = BigInt(`0x${hex.trim()}`);
  const out = new Set<string>();
  CAP_NAMES.forEach((name, i) => { if (mask & (1n << BigInt(i))) out.add(name); });
  return out;
}

const SETS = ['bounding', 'effective', 'inheritable', 'permitted', 'ambient'] as const;

/** Capabilities every engine knows (up to CAP_AUDIT_READ); newer ones (PERFMON, BPF, ...) vary. */
const CLASSIC = new Set<string>(CAP_NAMES.slice(0, 38));

/**
 * Drops from every capability set of the spec what `held` lacks. A spec that asks for every
 * classic capability eci holds is a privileged container (Docker's --privileged list predates
 * CAP_PERFMON/CAP_BPF/...): it gets every capability eci holds, in each set it names.
 */
export function clampCapabilities(spec: OciSpec, held: Set<string>): OciSpec {
  const caps = (spec.process as { capabilities?: Record<string, string[]> } | undefined)?.capabilities;
  if (!caps) return spec;
  const bounding = new Set(caps.bounding ?? []);
  const privileged = [...held].filter((c) => CLASSIC.has(c)).every((c) => bounding.has(c));
  const all = CAP_NAMES.filter((c) => held.has(c));
  const next: Record<string, string[]> = { ...caps };
  for (const s of SETS) {
    if (!Array.isArray(caps[s])) continue;
    next[s] = privileged && s !== 'ambient' && s !== 'inheritable' && caps[s].length ? all : caps[s].filter((c) => held.has(c));
  }
  return { ...spec, process: { ...spec.process, capabilities: next } };
}
