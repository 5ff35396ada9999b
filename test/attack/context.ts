// What the attack suite needs to know to run an attempt and to judge it: the engine and runtime
// under test, the probe binaries, scratch dirs, the paths an attacker would go for, and the host's
// own values (namespaces, disk, uptime, ...) that a contained container must not see.
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { RUN_FLAGS, type Dockerd, type DockerResult } from '../helpers/dockerd.ts';

export interface HostFacts {
  /** Root block device (e.g. /dev/vda), its major:minor and file system type. */
  disk: string;
  diskMajMin: string;
  diskFs: string;
  /** Whether host root can read the disk (a sandbox's device cgroup may forbid even that). */
  diskReadable: boolean;
  /** readlink /proc/self/ns/<ns> of the test process (dockerd's namespaces), e.g. { pid: 'pid:[4026531836]' }. */
  ns: Record<string, string>;
  /** Serial of host root's user keyring (attack-priv keyring, run on the host). */
  keyring: string;
  uptimeS: number;
  memTotalKb: number;
  hostname: string;
}

export interface RestrictedPaths {
  engineSocket: string;
  engineConfig: string;
  eciStateDir: string;
  eciSocket: string;
  /** Symlink in a shared dir pointing at eciStateDir. */
  symlinkToState: string;
  /** A dir that contains eciStateDir. */
  parentOfState: string;
  /** eciStateDir spelled with a ../ detour through a shared dir. */
  dotdotToState: string;
}

export interface AttackContext {
  d: Dockerd;
  img: string;
  /** Docker runtime name: "eci" or "runc". */
  runtime: string;
  /** Flags standing for --privileged under this runtime (see privilegedFlags in the test). */
  privFlags: string[];
  /** Host dir with the static probes, mounted read-only at /probe. */
  probes: string;
  /** Scratch dir of this run (volumes live below it); shared with containers. */
  work: string;
  /** A host process to join (dockerd): pid 1 may be out of reach even for host root in a sandbox. */
  hostPid: number;
  /** An image whose /evil is a relative symlink climbing to hostTarget (a host dir holding "host-only"). */
  symlink: { image: string; hostTarget: string };
  /** Host dirs (engine, manager, this run) whose appearance in a container's mountinfo leaks layout. */
  hostDirs: string[];
  /** A file that exists only on the host, as a path relative to the host's / (no leading slash). */
  marker: string;
  restricted: RestrictedPaths;
  host: HostFacts;
  /** eci's bus (the manager's embedded nats-server) and the repo to run node from; unset: the bus attempts cannot run. */
  bus?: { url: string; runDir: string; stateDir: string; repo: string };
}

/** What one container (or docker command sequence) showed: exit code, output, "key value" lines. */
export interface Findings {
  code: number;
  out: string;
  err: string;
  kv: Record<string, string>;
  /** The engine refused to start the container (docker exit 125-127 before the command ran). */
  refused: boolean;
}

/** "key rest of line" lines -> { key: 'rest of line' } (later lines win). */
export function parseKv(out: string): Record<string, string> {
  const kv: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const m = /^(\S+) ?(.*)$/.exec(line.trim());
    if (m) kv[m[1]] = m[2];
  }
  return kv;
}

export function findings(r: DockerResult, extra: Record<string, string> = {}): Findings {
  // docker run: 125 = the daemon/runtime failed, 126/127 = the command could not be run
  const refused = r.code >= 125 && r.code <= 127 && !/^\S+ /m.test(r.stdout);
  return { code: r.code, out: r.stdout, err: r.stderr, kv: { ...parseKv(r.stdout), ...extra }, refused };
}

/** `docker run --rm` under the context's runtime; `--network none` unless the flags pick a network. */
export function dockerRun(c: AttackContext, flags: string[], cmd: string[], o: { timeoutMs?: number } = {}): Promise<DockerResult> {
  const net = flags.some((f) => f.startsWith('--network')) ? [] : [...RUN_FLAGS];
  return c.d.docker(['run', '--rm', ...net, `--runtime=${c.runtime}`, ...flags, c.img, ...cmd], o);
}

/** The host's values, read once. `keyringProbe` is the attack-priv binary. */
export function readHostFacts(keyringProbe: string): HostFacts {
  const root = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')).find((f) => f[4] === '/');
  if (!root) throw new Error('no / in /proc/self/mountinfo');
  const post = root.slice(root.indexOf('-') + 1);
  const ns: Record<string, string> = {};
  for (const n of ['pid', 'net', 'ipc', 'uts', 'mnt', 'cgroup', 'user']) ns[n] = readlinkSync(`/proc/self/ns/${n}`);
  const keyring = /id=(\d+)/.exec(execFileSync(keyringProbe, ['keyring']).toString())?.[1] ?? 'none';
  let diskReadable = false;
  try {
    const fd = openSync(post[1], 'r');
    try { diskReadable = readSync(fd, Buffer.alloc(512), 0, 512, 0) === 512; } finally { closeSync(fd); }
  } catch { /* EPERM/EACCES: not readable */ }
  return {
    disk: post[1],
    diskReadable,
    diskMajMin: root[2],
    diskFs: post[0],
    ns,
    keyring,
    uptimeS: Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]),
    memTotalKb: Number(/^MemTotal:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'utf8'))![1]),
    hostname: hostname(),
  };
}
