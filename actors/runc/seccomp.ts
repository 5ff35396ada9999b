// Adds eci's seccomp user-notification rules to a spec, keeping the engine's own profile. Which
// syscalls are notified, and how, comes from the vetter's registry (actors/vetter/registry.ts):
// the mount family (old and new mount API) is sent to eci's listener, where the engine's profile
// allowed it; so are chmod/fchmod/fchmodat/fchmodat2, but only when the mode sets S_ISUID or S_ISGID
// (argument-filtered: an ordinary chmod never leaves the kernel). Creating a file with such a mode
// is refused by the filter itself. Nothing on the data path is ever notified. No `flags` (runc
// 1.1.5 rejects them). Also: opening syscalls in the engine's profile (allowSyscalls), for the
// system-container and init-syscalls steps.
import type { OciSpec } from './spec.ts';
import { SYSCALLS } from '../vetter/registry.ts';

/** The vetted syscalls notified unconditionally (the mount family, old and new API), from the registry. */
export const MOUNT_FAMILY: readonly string[] = SYSCALLS.filter((s) => s.notify === 'always').map((s) => s.name);

/**
 * Mode-changing syscalls and the index of their mode argument, from the registry (vetter/syscalls/chmod.ts).
 * Notified only when the mode sets S_ISUID or S_ISGID; eci-helper chmod-as then refuses it on the
 * container's volumes and performs it elsewhere.
 */
export const CHMOD_FAMILY: Readonly<Record<string, number>> = Object.fromEntries(
  SYSCALLS.flatMap((s) => (s.notify === 'always' ? [] : [[s.name, s.notify.modeArg] as const])),
);

/**
 * Creating syscalls: the index of their open flags (when they have any) and of their mode. In a
 * container that needs them (addNotifyRules' createRules), a creation whose mode sets S_ISUID or
 * S_ISGID (with O_CREAT or O_TMPFILE for the open family) is refused with EPERM by the filter, in the
 * rootfs as well as on volumes: stricter than "volumes only", because the
 * only race-free way to do it on the caller's behalf would be to create the file in the helper and
 * install the fd into the caller (SECCOMP_IOCTL_NOTIF_ADDFD), which eci does not do; and with CONTINUE
 * the path could be swapped after the check. Package managers are not affected: they create files
 * with plain modes and chmod them afterwards (that chmod is vetted as above). mkdir needs no rule: the
 * kernel drops S_ISUID/S_ISGID from mkdir's mode (S_ISGID comes only from a setgid parent).
 */
export const CREATE_FAMILY: Readonly<Record<string, { flags?: number; mode: number }>> = {
  open: { flags: 1, mode: 2 }, openat: { flags: 2, mode: 3 }, creat: { mode: 1 }, mknod: { mode: 1 }, mknodat: { mode: 2 },
};

export const S_ISUID = 0o4000;
export const S_ISGID = 0o2000;
const O_CREAT = 0o100;
const O_TMPFILE_BIT = 0o20000000; // __O_TMPFILE (O_TMPFILE is this | O_DIRECTORY)
const EPERM = 1;
const ENOSYS = 38;

interface SeccompArg { index: number; value: number; valueTwo: number; op: string }
interface SeccompRule { names?: string[]; name?: string; action: string; args?: SeccompArg[] | unknown[]; errnoRet?: number; includes?: unknown; excludes?: unknown }
interface Seccomp { defaultAction: string; architectures?: string[]; listenerPath?: string; listenerMetadata?: string; syscalls?: SeccompRule[]; flags?: string[] }

const ARCHS = ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'];

/** (arg[index] & mask) == datum. In the OCI spec `value` is the mask, `valueTwo` the datum. */
const masked = (index: number, mask: number, datum: number): SeccompArg => ({ index, value: mask, valueTwo: datum, op: 'SCMP_CMP_MASKED_EQ' });

/** Whether a rule's or the default's action lets a call through (LOG allows and logs). */
const allowing = (action: string | undefined) => action === 'SCMP_ACT_ALLOW' || action === 'SCMP_ACT_LOG';

/** The syscall names a rule covers (`name` is the deprecated singular form). */
const namesOf = (r: SeccompRule): string[] => r.names ?? (r.name ? [r.name] : []);

/**
 * Which names the spec's own profile lets through (an unconditional ALLOW rule, or an ALLOW default
 * with no rule for the name). Those, and only those, get eci's rules.
 */
function allowedByProfile(sc: Seccomp | undefined, name: string): boolean {
  if (!sc) return true; // no profile (e.g. --privileged): everything is allowed
  const rules = (sc.syscalls ?? []).filter((r) => namesOf(r).includes(name));
  if (!rules.length) return allowing(sc.defaultAction);
  return rules.some((r) => allowing(r.action) && !(r.args && r.args.length));
}

/**
 * The spec with `names` allowed outright: one unconditional ALLOW rule for those the profile does not
 * allow unconditionally yet, taken out of every refusing rule (libseccomp takes one action per
 * syscall and argument match). An argument-filtered ALLOW rule keeps them, unless `dropFiltered`
 * (the new rule alone then names them). Without a profile, or when all are allowed, the spec itself.
 */
export function allowSyscalls(spec: OciSpec, names: readonly string[], o: { dropFiltered?: boolean } = {}): OciSpec {
  const sc = spec.linux?.seccomp as Seccomp | undefined;
  const missing = names.filter((n) => !allowedByProfile(sc, n));
  if (!sc || !missing.length) return spec;
  const keeps = (r: SeccompRule) => allowing(r.action) && !(o.dropFiltered && r.args?.length);
  const syscalls = (sc.syscalls ?? []).flatMap((r) => {
    const own = namesOf(r);
    if (keeps(r) || !own.some((n) => missing.includes(n))) return [r];
    const { name: _single, ...rest } = r;
    const left = own.filter((n) => !missing.includes(n));
    return left.length ? [{ ...rest, names: left }] : [];
  });
  return { ...spec, linux: { ...spec.linux, seccomp: { ...sc, syscalls: [...syscalls, { names: [...missing], action: 'SCMP_ACT_ALLOW' }] } } };
}

/**
 * The argument-filtered rules for the setuid/setgid vetting, for the names the profile allowed.
 * With a profile, the name leaves the profile's unconditional ALLOW and gets an ALLOW for the modes
 * that set neither bit instead; what is left (none of eci's rules matching) falls to the profile's
 * default action, never to ALLOW. Without one (default ALLOW), the NOTIFY/ERRNO rules alone suffice.
 *
 * Accepted by runc 1.1.5 + libseccomp 2.5.4 (checked with real containers): several rules for one
 * syscall with different actions, each an AND of MASKED_EQ conditions on distinct arguments, the
 * conditions of different rules disjoint (a mode matching two rules always matches two of the same
 * action). runc drops a rule whose action equals the default (e.g. ERRNO/EPERM under Docker's
 * profile): the default then gives the same answer, which is why the ALLOW rules never cover a
 * refused combination.
 */
function setuidRules(sc: Seccomp | undefined, createRules: boolean): { names: string[]; rules: SeccompRule[] } {
  const names: string[] = [];
  const rules: SeccompRule[] = [];
  for (const [name, i] of Object.entries(CHMOD_FAMILY)) {
    if (!allowedByProfile(sc, name)) continue;
    names.push(name);
    rules.push(
      { names: [name], action: 'SCMP_ACT_NOTIFY', args: [masked(i, S_ISUID, S_ISUID)] },
      { names: [name], action: 'SCMP_ACT_NOTIFY', args: [masked(i, S_ISGID, S_ISGID)] },
    );
    if (sc) rules.push({ names: [name], action: 'SCMP_ACT_ALLOW', args: [masked(i, S_ISUID | S_ISGID, 0)] });
  }
  for (const [name, { flags, mode }] of Object.entries(CREATE_FAMILY)) {
    if (!createRules || !allowedByProfile(sc, name)) continue;
    names.push(name);
    for (const bit of [S_ISUID, S_ISGID]) {
      if (flags === undefined) rules.push({ names: [name], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM, args: [masked(mode, bit, bit)] });
      else for (const how of [O_CREAT, O_TMPFILE_BIT]) rules.push({ names: [name], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM, args: [masked(flags, how, how), masked(mode, bit, bit)] });
    }
    if (sc) {
      if (flags !== undefined) rules.push({ names: [name], action: 'SCMP_ACT_ALLOW', args: [masked(flags, O_CREAT | O_TMPFILE_BIT, 0)] });
      rules.push({ names: [name], action: 'SCMP_ACT_ALLOW', args: [masked(mode, S_ISUID | S_ISGID, 0)] });
    }
  }
  // openat2 carries its mode in a struct in memory, out of the filter's reach: it answers ENOSYS, the
  // answer of a kernel without it (every user falls back to openat, which is filtered above).
  if (createRules && allowedByProfile(sc, 'openat2')) {
    names.push('openat2');
    rules.push({ names: ['openat2'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS });
  }
  return { names, rules };
}

/**
 * `createRules: false` leaves out the creation rules (CREATE_FAMILY, openat2), and with them the only
 * argument-filtered rules on a data-path syscall: an argument-filtered openat runs the whole filter
 * (the kernel's allow cache cannot hold it, and libseccomp orders it after every unconditional rule),
 * ~200 ns per open here. The caller may drop them only for a container where no file it creates can
 * reach an unprivileged host user (no writable host directory shared, a rootfs under a directory
 * others cannot search): see actors/setuid-exposure.ts. The chmod family stays notified regardless.
 */
export function addNotifyRules(spec: OciSpec, listenerPath: string, metadata: string, o: { createRules?: boolean } = {}): OciSpec {
  const sc = spec.linux?.seccomp as Seccomp | undefined;
  const notified = MOUNT_FAMILY.filter((n) => allowedByProfile(sc, n));
  const setuid = setuidRules(sc, o.createRules ?? true);
  const taken: readonly string[] = [...notified, ...setuid.names];
  // Remove the taken names from every other rule: eci's rules alone decide for them.
  const rest = (sc?.syscalls ?? [])
    .map((r) => ({ ...r, names: namesOf(r).filter((n) => !taken.includes(n)) }))
    .filter((r) => r.names.length > 0)
    .map((r) => { const { name: _drop, ...keep } = r; return keep; });
  const next: Seccomp = {
    ...(sc ?? { defaultAction: 'SCMP_ACT_ALLOW' }),
    architectures: sc?.architectures?.length ? sc.architectures : ARCHS,
    listenerPath,
    listenerMetadata: metadata,
    syscalls: [...rest, ...(notified.length ? [{ names: [...notified], action: 'SCMP_ACT_NOTIFY' }] : []), ...setuid.rules],
  };
  delete next.flags; // runc 1.1.5: "seccomp flags are not yet supported by runc"
  return { ...spec, linux: { ...spec.linux, seccomp: next } };
}
