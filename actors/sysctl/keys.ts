// The table of emulated kernel settings: the /proc/sys entries of the Sysbox reference (§2) that
// Linux 6.18 does NOT namespace and containers may write, plus the /sys files eci emulates. What
// the kernel already scopes needs no entry: the container's own /proc and sysfs show its values
// (see the README table "/proc/sys on 6.18"). Three scopes:
//   host-max  - the container's value is its own; the host holds max(baseline, live containers)
//               (the sysctl reconciler);
//   container - the value is the container's alone (cached per container, first read = the host's);
//               the host is never written;
//   readonly  - the host's value, read afresh each time; every write is EACCES (Docker's read-only
//               /proc/sys would answer EROFS; the reference says EACCES);
//   uuid      - read-only, derived per container from the host's value (productUuid): a machine id
//               stable for the container and different from the host's and every other container's.
// Entries absent from the host (e.g. kernel.sysrq, yama) are skipped at start-up.
// Validation is pure: text in, normalized text out, or SysctlValueError (EINVAL).
export type Scope = 'host-max' | 'container' | 'readonly' | 'uuid';

export interface SysctlKey {
  /** Dotted sysctl name (e.g. fs.file-max), or for /sys files their absolute path. */
  key: string;
  /** Host path under /proc/sys (the reconciler's host file); for /sys files, relative to /sys. */
  path: string;
  /** Absolute path of the emulated file, the same in the container and on the host. */
  target: string;
  /** File name in the sysctl FUSE directory. */
  file: string;
  scope: Scope;
  /** How many integers a write holds (kernel.printk takes 1..4; everything else exactly 1). */
  ints: { min: number; max: number };
  /** Range of each integer, as the kernel accepts it (a safe integer for reconciled entries). */
  min: number;
  max: number;
  /** Larger bounds than a double holds exactly (vm.mmap_min_addr). */
  minBig?: bigint;
  maxBig?: bigint;
}

const INT_MAX = 2147483647;
const LONG_MAX = 9223372036854775807n;
const INT_MIN = -2147483648;

function proc(key: string, scope: Scope, min: number, max: number, o: Partial<SysctlKey> = {}): SysctlKey {
  const path = key.replace(/\./g, '/');
  return { key, path, target: `/proc/sys/${path}`, file: `sys-${key.replace(/[._]/g, '-')}`, scope, ints: { min: 1, max: 1 }, min, max, ...o };
}

function sys(path: string, scope: Scope, min: number, max: number): SysctlKey {
  return { key: `/sys/${path}`, path, target: `/sys/${path}`, file: `sysfs-${path.replace(/[/._]/g, '-')}`, scope, ints: { min: 1, max: 1 }, min, max };
}

/** Every emulated entry, in the order they are served and injected. */
export const ENTRIES: readonly SysctlKey[] = [
  // host = max (reconciled)
  // The kernel takes 0..LONG_MAX (systemd writes LONG_MAX); the container reads back what it wrote,
  // the host is raised at most to the admin's ceiling (DEFAULT_SYSCTL_CEILINGS).
  proc('fs.file-max', 'host-max', 0, Number.MAX_SAFE_INTEGER, { maxBig: LONG_MAX }),
  proc('fs.nr_open', 'host-max', 64, 2147483584), // sysctl_nr_open_min/max on 64-bit
  proc('net.netfilter.nf_conntrack_max', 'host-max', 0, INT_MAX), // global, 0444 outside the initial netns
  // per container only
  proc('fs.protected_hardlinks', 'container', 0, 1),
  proc('fs.protected_symlinks', 'container', 0, 1),
  proc('kernel.panic', 'container', INT_MIN, INT_MAX),
  proc('kernel.panic_on_oops', 'container', INT_MIN, INT_MAX),
  proc('kernel.printk', 'container', INT_MIN, INT_MAX, { ints: { min: 1, max: 4 } }), // console, default, min, default-console levels
  proc('kernel.sysrq', 'container', 0, 511),
  proc('kernel.kptr_restrict', 'container', 0, 2), // the kernel's range (Sysbox allows 3; 6.18 refuses it)
  proc('kernel.dmesg_restrict', 'container', 0, 1),
  proc('kernel.yama.ptrace_scope', 'container', 0, 3),
  proc('vm.overcommit_memory', 'container', 0, 2),
  proc('vm.mmap_min_addr', 'container', 0, Number.MAX_SAFE_INTEGER, { minBig: 0n, maxBig: 9223372036854775807n }),
  // read-only (0444 in the kernel too)
  proc('kernel.cap_last_cap', 'readonly', 0, 0),
  proc('kernel.ngroups_max', 'readonly', 0, 0),
  proc('kernel.random.uuid', 'readonly', 0, 0), // a fresh uuid on every read, as the kernel's
  // /sys. Sysbox pushes hashsize to the host; a container sizing the host's conntrack table is a
  // host-memory lever (the kernel allocates it), so eci keeps it per container.
  sys('module/nf_conntrack/parameters/hashsize', 'container', 1, 536870911), // UINT_MAX / sizeof(hlist_nulls_head)
  sys('module/nf_conntrack/parameters/expect_hashsize', 'readonly', 0, 0), // 0400 host root: unreadable in a container otherwise
  // Only where the host has DMI: sysfs directories cannot be created to bind onto.
  sys('devices/virtual/dmi/id/product_uuid', 'uuid', 0, 0),
];

/**
 * /sys/devices/virtual/dmi/id/product_uuid as a container sees it (as Sysbox): the host's first 23
 * characters (all zeros without one), '-', and the first 12 characters of the container id.
 */
export function productUuid(hostText: string | undefined, containerId: string): string {
  const host = (hostText ?? '').trim();
  const prefix = /^[0-9a-fA-F-]{23}/.test(host) ? host.slice(0, 23) : '00000000-0000-0000-0000';
  return `${prefix}-${containerId.slice(0, 12).padEnd(12, '0')}\n`;
}

/**
 * How far a container may raise the host's value of a host-max entry (settings `sysctlCeilings`
 * overrides them): a container may write anything the kernel accepts and reads it back, but the host
 * is programmed with at most max(its baseline, min(the containers' values, the ceiling)). Each is a
 * host-memory lever: open files, a process's fd table, conntrack entries (~300 bytes each).
 */
export const DEFAULT_SYSCTL_CEILINGS: Readonly<Record<string, number>> = {
  'fs.file-max': 16777216,
  'fs.nr_open': 16777216,
  'net.netfilter.nf_conntrack_max': 1048576,
};

/** The ceiling of a host-max entry: the admin's, else the default, else its range. */
export function ceilingOf(k: SysctlKey, ceilings: Readonly<Record<string, number>> = DEFAULT_SYSCTL_CEILINGS): number {
  return Math.min(k.max, ceilings[k.key] ?? DEFAULT_SYSCTL_CEILINGS[k.key] ?? k.max);
}

/** The host = max entries (the sysctl reconciler's keys). */
export const RECONCILED: readonly SysctlKey[] = ENTRIES.filter((k) => k.scope === 'host-max');

export function keyByFile(file: string, keys: readonly SysctlKey[] = ENTRIES): SysctlKey | undefined {
  return keys.find((k) => k.file === file);
}

export function keyByName(key: string, keys: readonly SysctlKey[] = ENTRIES): SysctlKey | undefined {
  return keys.find((k) => k.key === key);
}

export class SysctlValueError extends Error {
  readonly code = 'EINVAL';
}

/**
 * Checks what a process wrote to an emulated file: k.ints decimal integers (a leading '-' only where
 * the range allows it) separated by blanks, optional surrounding blanks and newline, each within
 * [min, max]. Returns the value as the file then reads ("a b\n", tab-separated like the kernel for
 * several). Throws SysctlValueError (EINVAL) otherwise.
 */
export function validateText(k: SysctlKey, text: string): string {
  if (k.scope === 'readonly' || k.scope === 'uuid') throw Object.assign(new Error(`${k.key} is read-only`), { code: 'EACCES' });
  const words = text.trim() === '' ? [] : text.trim().split(/[ \t\n]+/);
  if (words.length < k.ints.min || words.length > k.ints.max)
    throw new SysctlValueError(`${k.key}: expected ${k.ints.min === k.ints.max ? k.ints.min : `${k.ints.min}..${k.ints.max}`} integer(s), got ${JSON.stringify(text.slice(0, 40))}`);
  const lo = k.minBig ?? BigInt(k.min);
  const hi = k.maxBig ?? BigInt(k.max);
  const out: string[] = [];
  for (const w of words) {
    if (!/^-?\d{1,20}$/.test(w)) throw new SysctlValueError(`${k.key}: ${JSON.stringify(w.slice(0, 40))} is not an integer`);
    const v = BigInt(w);
    if (v < lo || v > hi) throw new SysctlValueError(`${k.key}: ${w} is outside ${lo}..${hi}`);
    out.push(v.toString());
  }
  return `${out.join('\t')}\n`;
}

/**
 * Parses a write to a reconciled (single, non-negative integer) entry: one decimal integer, optional
 * surrounding blanks and newline, within the kernel's range [min, maxBig ?? max]. Returns the text the
 * container reads back, and the value as a number for the host (at most k.max: a safe integer, and
 * the ceilings are far below). Throws SysctlValueError (EINVAL) otherwise.
 */
export function parseReconciled(k: SysctlKey, text: string): { text: string; value: number } {
  const m = /^[ \t\n]*(\d{1,20})[ \t\n]*$/.exec(text);
  if (!m) throw new SysctlValueError(`${k.key}: ${JSON.stringify(text.slice(0, 40))} is not a non-negative integer`);
  const v = BigInt(m[1]);
  const lo = k.minBig ?? BigInt(k.min);
  const hi = k.maxBig ?? BigInt(k.max);
  if (v < lo || v > hi) throw new SysctlValueError(`${k.key}: ${m[1]} is outside ${lo}..${hi}`);
  return { text: `${v}\n`, value: Number(v > BigInt(k.max) ? BigInt(k.max) : v) };
}

/** parseReconciled's number for the host. */
export function parseValue(k: SysctlKey, text: string): number {
  return parseReconciled(k, text).value;
}
