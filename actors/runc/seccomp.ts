// Adds eci's seccomp user-notification rules to a spec, keeping the engine's own profile:
// the mount family (old and new mount API) is sent to eci's listener, where the engine's profile
// allowed it; nothing on the data path is ever notified. No `flags` (runc 1.1.5 rejects them).
import type { OciSpec } from './spec.ts';

export const MOUNT_FAMILY = ['mount', 'umount2', 'open_tree', 'move_mount', 'fsopen', 'fsconfig', 'fsmount', 'fspick', 'mount_setattr'] as const;

interface SeccompRule { names?: string[]; name?: string; action: string; args?: unknown[]; errnoRet?: number; includes?: unknown; excludes?: unknown }
interface Seccomp { defaultAction: string; architectures?: string[]; listenerPath?: string; listenerMetadata?: string; syscalls?: SeccompRule[]; flags?: string[] }

const ARCHS = ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'];

/**
 * Which mount-family names the spec's own profile lets through (an unconditional ALLOW rule, or an
 * ALLOW default with no rule for the name). Those, and only those, become NOTIFY.
 */
function allowedByProfile(sc: Seccomp | undefined, name: string): boolean {
  if (!sc) return true; // no profile (e.g. --privileged): everything is allowed
  const rules = (sc.syscalls ?? []).filter((r) => (r.names ?? (r.name ? [r.name] : [])).includes(name));
  if (!rules.length) return sc.defaultAction === 'SCMP_ACT_ALLOW' || sc.defaultAction === 'SCMP_ACT_LOG';
  return rules.some((r) => (r.action === 'SCMP_ACT_ALLOW' || r.action === 'SCMP_ACT_LOG') && !(r.args && r.args.length));
}

export function addNotifyRules(spec: OciSpec, listenerPath: string, metadata: string): OciSpec {
  const sc = spec.linux?.seccomp as Seccomp | undefined;
  const notified = MOUNT_FAMILY.filter((n) => allowedByProfile(sc, n));
  // Remove the notified names from every other rule: one action per syscall keeps libseccomp happy.
  const rest = (sc?.syscalls ?? [])
    .map((r) => ({ ...r, names: (r.names ?? (r.name ? [r.name] : [])).filter((n) => !(notified as readonly string[]).includes(n)) }))
    .filter((r) => r.names.length > 0)
    .map((r) => { const { name: _drop, ...keep } = r; return keep; });
  const next: Seccomp = {
    ...(sc ?? { defaultAction: 'SCMP_ACT_ALLOW' }),
    architectures: sc?.architectures?.length ? sc.architectures : ARCHS,
    listenerPath,
    listenerMetadata: metadata,
    syscalls: [...rest, ...(notified.length ? [{ names: [...notified], action: 'SCMP_ACT_NOTIFY' }] : [])],
  };
  delete next.flags; // runc 1.1.5: "seccomp flags are not yet supported by runc"
  return { ...spec, linux: { ...spec.linux, seccomp: next } };
}
