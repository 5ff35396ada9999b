// The one table of places where eci deliberately behaves unlike runc (README "Where eci differs from
// runc" lists the same rows; test/unit/compat-refusals.test.ts keeps the two in step). The
// compatibility suite (test/integration/compat.test.ts) fails on any other difference. A row says
// what eci does instead, as a check on eci's outcome: a documented refusal must still happen.

/** What one run of a case gave, normalized (trailing blanks and empty trailing lines dropped). */
export interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

export type DifferenceKind = 'host namespaces' | 'restricted paths' | 'privileged limits' | 'setuid on shared host volumes' | 'emulated /proc' | 'host root in a running container';

export interface Difference {
  /** The suite's case name. */
  case: string;
  kind: DifferenceKind;
  /** One line for the README: what eci does instead of what runc does. */
  what: string;
  /** Whether eci's outcome is the documented one (runc's is given to compare with). */
  holds(eci: Outcome, runc: Outcome): boolean;
}

const refusedWith = (text: string) => (eci: Outcome) => eci.code !== 0 && eci.stderr.includes(text);

/** Fields of /proc/meminfo as `{ name: kB }`. */
export function meminfoFields(s: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of s.matchAll(/^(\w+):\s+(\d+) kB$/gm)) out[m[1]] = Number(m[2]);
  return out;
}

export const DIFFERENCES: readonly Difference[] = Object.freeze([
  {
    case: 'host pid namespace',
    kind: 'host namespaces',
    what: '`--pid host` (like any host pid, ipc, uts, mount or network namespace) is refused at create',
    holds: refusedWith("eci containers can't share namespaces [pid] with the host"),
  },
  {
    case: 'restricted host path',
    kind: 'restricted paths',
    what: "a bind of a restricted host path (`/proc`, `/sys`, `/dev`, the engines' config and state, eci's own, `restrictedPaths`) is refused at create",
    holds: refusedWith("because it's configured as a restricted host mount"),
  },
  {
    case: 'mknod of a device',
    kind: 'privileged limits',
    what: "container root is root only in its user namespace: `mknod` of a device fails with EPERM (Docker's CAP_MKNOD allows it under runc); `--privileged` gets no host access either (see Privileged containers)",
    holds: (eci) => eci.code === 0 && eci.stdout.split('\n').includes('mknod=1') && eci.stderr.includes('Operation not permitted'),
  },
  {
    case: 'setuid on a shared host volume',
    kind: 'setuid on shared host volumes',
    what: '`chmod u+s`/`g+s` on a bind-mounted host dir or volume fails with EPERM: a host user could run the file as root',
    holds: (eci) => eci.code === 0 && eci.stdout.split('\n').includes('chmod=1') && eci.stdout.split('\n').includes('755'),
  },
  {
    case: 'meminfo with --memory',
    kind: 'emulated /proc',
    what: "`/proc/meminfo` (like the rest of the emulated `/proc`) shows the container's cgroup, not the host: MemTotal is the memory limit",
    holds: (eci, runc) => {
      const e = meminfoFields(eci.stdout);
      const r = meminfoFields(runc.stdout);
      const fields = ['MemFree', 'MemAvailable', 'Cached', 'Active', 'Inactive', 'SReclaimable'];
      return eci.code === 0 && e.MemTotal === 256 * 1024 && r.MemTotal > e.MemTotal && fields.every((f) => f in e && e[f] <= e.MemTotal);
    },
  },
  {
    case: 'sysctl -w fs.file-max',
    kind: 'emulated /proc',
    what: "container root may write eci's emulated `/proc/sys` entries (Docker mounts `/proc/sys` read-only): each container sees its own value, host-max ones (`fs.file-max`) raise the host only up to `sysctlCeilings`",
    // 100000 is below any host's value: nothing on the host changes.
    holds: (eci) => eci.code === 0 && eci.stdout.split('\n').join(' ') === 'file-max=0 100000',
  },
  {
    case: 'podman cp',
    kind: 'host root in a running container',
    what: "a file `podman cp` puts into a running container is `nobody:nogroup` inside: Podman writes it from within the container's mount namespace as host root, which is never container root (on disk id 65536); `docker cp`, copying out, and copying into a created or stopped container are as under runc",
    holds: (eci) => eci.code === 0 && ['from-host', 'nobody:nogroup', 'out'].every((l) => eci.stdout.split('\n').includes(l)),
  },
]);

/** The first 40 lines of `s`, and how many more there are. */
function head(s: string): string {
  const lines = s.split('\n');
  return lines.length <= 40 ? s : `${lines.slice(0, 40).join('\n')}\n... (${lines.length - 40} more lines)`;
}

/** Lines with trailing blanks dropped, and no empty trailing lines. */
export function normalize(o: Outcome): Outcome {
  const clean = (s: string) => s.split('\n').map((l) => l.trimEnd()).join('\n').replace(/\n+$/, '');
  return { code: o.code, stdout: clean(o.stdout), stderr: clean(o.stderr) };
}

/**
 * '' when eci's outcome is acceptable for this case: the documented difference holds if the case
 * has one, else exit code and stdout equal runc's. Otherwise what differs, for the failure message.
 */
export function compareWithRunc(name: string, runc: Outcome, eci: Outcome): string {
  const r = normalize(runc);
  const e = normalize(eci);
  const show = (o: Outcome) => `exit ${o.code}\n--- stdout\n${head(o.stdout)}\n--- stderr\n${head(o.stderr)}`;
  const doc = DIFFERENCES.find((d) => d.case === name);
  if (doc) {
    return doc.holds(e, r) ? '' : `${name}: eci no longer does what the table documents (${doc.what})\n=== runc: ${show(r)}\n=== eci: ${show(e)}`;
  }
  if (r.code === e.code && r.stdout === e.stdout) return '';
  return `${name}: eci differs from runc\n=== runc: ${show(r)}\n=== eci: ${show(e)}`;
}
