// The administrator's settings: one JSON file (/etc/eci/settings.json or ECI_SETTINGS). Every
// field is optional; defaults work with no file at all. A bad file is refused with the field and
// the reason, and whatever was in force stays in force.
import { readFileSync } from 'node:fs';
import { isAbsolute, normalize } from 'node:path';
import { EciError } from './errors.ts';
import { DEFAULT_SYSCTL_CEILINGS, keyByName, RECONCILED } from './sysctl/keys.ts';

export const DEFAULT_SETTINGS_PATH = '/etc/eci/settings.json';

/** The first host id of eci's default pool: 0x70000000. */
export const DEFAULT_ID_BASE = 0x7000_0000;

export interface Settings {
  /** Docker-style admin pair: eci on, and users cannot turn it off per container. */
  enhancedContainerIsolation: { value: boolean; locked: boolean };
  /** Host paths users may bind-mount (and everything under them). */
  fileSharing: string[];
  /** Harmless host files (and dirs) any container may bind-mount read-only, shared or not; read-write stays refused. */
  readOnlySystemFiles: string[];
  /** Host paths that may never be bind-mounted, on top of the built-in list. */
  restrictedPaths: string[];
  /** Engine sockets: mountable only into containers whose image is trusted. */
  engineSockets: string[];
  dockerSocketMount: { imageList: { images: string[] } };
  idRange: { base: number; size: number; count: number };
  volumes: { allowSuid: boolean; allowDevices: boolean };
  /**
   * The audit trail (stream ECI_EVENTS): at most `maxBytes` and `maxAgeDays` of events, the oldest
   * dropped first. Per container and second, at most `identicalPerSecond` identical vetter decisions
   * and `decisionsPerSecond` decisions in all are kept one by one; the rest are counted into one
   * `vetter.decisions-coalesced` event per kind of decision (README "Threat model" gives the rate).
   */
  auditTrail: { maxBytes: number; maxAgeDays: number; identicalPerSecond: number; decisionsPerSecond: number };
  /** How far containers may raise a host-max sysctl on the host (fs.file-max, fs.nr_open, net.netfilter.nf_conntrack_max). */
  sysctlCeilings: Record<string, number>;
}

/** Always restricted, whatever the file says: the engines' config and sockets, eci's own state, kernel surfaces. */
export const BUILTIN_RESTRICTED = [
  '/etc/docker', '/etc/containerd', '/etc/containers', '/run/containerd', '/var/lib/containerd', '/var/lib/docker/containers',
  '/var/lib/containers/storage/overlay-containers', '/run/containers/storage/overlay-containers',
  '/etc/eci', '/var/lib/eci', '/run/eci',
  '/proc', '/sys', '/dev', '/boot', '/lib/modules', '/usr/lib/modules',
];

export const DEFAULT_SETTINGS: Settings = {
  enhancedContainerIsolation: { value: true, locked: true },
  fileSharing: ['/home', '/root', '/tmp', '/var/tmp', '/srv', '/mnt', '/media', '/opt', '/var/lib/docker/volumes'],
  // The time zone: `-v /etc/localtime:/etc/localtime:ro` is common and reveals nothing.
  readOnlySystemFiles: ['/etc/localtime', '/etc/timezone', '/usr/share/zoneinfo'],
  restrictedPaths: [],
  engineSockets: ['/var/run/docker.sock', '/run/docker.sock', '/run/podman/podman.sock', '/run/containerd/containerd.sock'],
  dockerSocketMount: { imageList: { images: [] } },
  // Above useradd's subordinate ids (SUB_UID_MAX 600100000) and systemd-nspawn's container ranges
  // (up to 0x6FFFFFFF), below 2^31 (podman's `containers` line, the foreign-uid range).
  idRange: { base: DEFAULT_ID_BASE, size: 65536, count: 1024 },
  volumes: { allowSuid: false, allowDevices: false },
  auditTrail: { maxBytes: 256 * 1024 * 1024, maxAgeDays: 30, identicalPerSecond: 5, decisionsPerSecond: 20 },
  sysctlCeilings: { ...DEFAULT_SYSCTL_CEILINGS },
};

type Checker = (v: unknown, field: string) => unknown;

const bad = (field: string, why: string) => new EciError('ESETTINGS', `${field}: ${why}`);

const bool: Checker = (v, f) => { if (typeof v !== 'boolean') throw bad(f, `expected true or false, got ${JSON.stringify(v)}`); return v; };
const int = (min: number, max: number): Checker => (v, f) => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(f, `expected an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return v;
};
const absPaths: Checker = (v, f) => {
  if (!Array.isArray(v)) throw bad(f, 'expected an array of absolute paths');
  return v.map((p, i) => {
    if (typeof p !== 'string' || !isAbsolute(p)) throw bad(`${f}[${i}]`, `expected an absolute path, got ${JSON.stringify(p)}`);
    return normalize(p).replace(/(.)\/$/, '$1');
  });
};
const imageRefs: Checker = (v, f) => {
  if (!Array.isArray(v)) throw bad(f, 'expected an array of image references');
  return v.map((p, i) => {
    if (typeof p !== 'string' || !/^(\*|[a-z0-9][a-z0-9._\/:-]*(@sha256:[0-9a-f]{64})?(:[A-Za-z0-9_.*-]+)?|sha256:[0-9a-f]{64})$/.test(p)) {
      throw bad(`${f}[${i}]`, `expected an image reference (name[:tag|:*], name@sha256:..., or *), got ${JSON.stringify(p)}`);
    }
    return p;
  });
};
const ceilings: Checker = (v, f) => {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw bad(f, 'expected an object of sysctl name -> integer');
  const out: Record<string, number> = {};
  for (const [name, n] of Object.entries(v as Record<string, unknown>)) {
    const k = keyByName(name, RECONCILED);
    if (!k) throw bad(`${f}.${name}`, `not a host-max sysctl (known: ${RECONCILED.map((r) => r.key).join(', ')})`);
    out[name] = int(k.min, k.max)(n, `${f}.${name}`) as number;
  }
  return out;
};
function obj(shape: Record<string, Checker>): Checker {
  return (v, f) => {
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw bad(f, 'expected an object');
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      const c = Object.hasOwn(shape, k) ? shape[k] : undefined; // not Object.prototype members ("constructor")
      if (!c) throw bad(f ? `${f}.${k}` : k, `unknown field (known: ${Object.keys(shape).join(', ')})`);
      out[k] = c(x, f ? `${f}.${k}` : k);
    }
    return out;
  };
}

const schema = obj({
  configurationFileVersion: int(1, 1),
  enhancedContainerIsolation: obj({ value: bool, locked: bool }),
  fileSharing: absPaths,
  readOnlySystemFiles: absPaths,
  restrictedPaths: absPaths,
  engineSockets: absPaths,
  dockerSocketMount: obj({ imageList: obj({ images: imageRefs }) }),
  idRange: obj({ base: int(1, 0xfffffffe), size: int(65536, 0x7fffffff), count: int(1, 65536) }),
  volumes: obj({ allowSuid: bool, allowDevices: bool }),
  auditTrail: obj({
    maxBytes: int(1024 * 1024, 1024 ** 4), maxAgeDays: int(1, 3650), identicalPerSecond: int(1, 1000), decisionsPerSecond: int(1, 10_000),
  }),
  sysctlCeilings: ceilings,
});

/** Validates settings text and merges it over the defaults. Throws ESETTINGS naming the field. */
export function parseSettings(text: string, where = 'settings'): Settings {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new EciError('ESETTINGS', `${where}: not valid JSON (${(e as Error).message})`);
  }
  let v: Record<string, any>;
  try {
    v = schema(raw, '') as Record<string, any>;
  } catch (e) {
    throw new EciError('ESETTINGS', `${where}: ${(e as Error).message}`);
  }
  const d = DEFAULT_SETTINGS;
  const s: Settings = {
    enhancedContainerIsolation: { ...d.enhancedContainerIsolation, ...v.enhancedContainerIsolation },
    fileSharing: v.fileSharing ?? d.fileSharing,
    readOnlySystemFiles: v.readOnlySystemFiles ?? d.readOnlySystemFiles,
    restrictedPaths: v.restrictedPaths ?? d.restrictedPaths,
    engineSockets: v.engineSockets ?? d.engineSockets,
    dockerSocketMount: { imageList: { images: v.dockerSocketMount?.imageList?.images ?? d.dockerSocketMount.imageList.images } },
    idRange: { ...d.idRange, ...v.idRange },
    volumes: { ...d.volumes, ...v.volumes },
    auditTrail: { ...d.auditTrail, ...v.auditTrail },
    sysctlCeilings: { ...d.sysctlCeilings, ...v.sysctlCeilings },
  };
  if (s.auditTrail.identicalPerSecond > s.auditTrail.decisionsPerSecond) {
    throw new EciError('ESETTINGS', `${where}: auditTrail.identicalPerSecond: expected at most decisionsPerSecond (${s.auditTrail.decisionsPerSecond}), got ${s.auditTrail.identicalPerSecond}`);
  }
  if (s.idRange.base + s.idRange.size * s.idRange.count > 0xffffffff) {
    throw new EciError('ESETTINGS', `${where}: idRange: base + count x size goes past the 32-bit id space`);
  }
  return s;
}

/** Reads the settings file; a missing file means the defaults. */
export function loadSettings(path: string): Settings {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return DEFAULT_SETTINGS;
    throw new EciError('ESETTINGS', `${path}: cannot read (${(e as NodeJS.ErrnoException).code})`);
  }
  return parseSettings(text, path);
}
