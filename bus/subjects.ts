// Every NATS subject eci uses is built here, so names stay versioned and consistent.
// Tokens go general -> specific, lower-case, version early: eci.v1.evt.container.<id>.<event>.

export const VERSION = 'v1';
export const PREFIX = `eci.${VERSION}`;

/** The JetStream stream that keeps every event, and the subjects it captures. */
export const EVENTS_STREAM = 'ECI_EVENTS';
export const EVENTS_SUBJECTS = `${PREFIX}.evt.>`;

/** KV buckets (allocator ranges; container records). */
export const RANGES_BUCKET = 'eci-ranges';
export const CONTAINERS_BUCKET = 'eci-containers';

const TOKEN = /^[A-Za-z0-9_-]{1,128}$/;

export class SubjectTokenError extends Error {
  readonly code = 'EBADTOKEN';
  constructor(readonly token: string) {
    super(`invalid subject token ${JSON.stringify(token)}: use 1-128 of [A-Za-z0-9_-]`);
  }
}

/** A container id or other user-given token may not carry `.`, `*`, `>` or spaces. */
export function token(t: string): string {
  if (!TOKEN.test(t)) throw new SubjectTokenError(t);
  return t;
}

export const subjects = {
  containerEvent: (id: string, event: string) => `${PREFIX}.evt.container.${token(id)}.${token(event)}`,
  containerEvents: (id = '*') => `${PREFIX}.evt.container.${id === '*' ? '*' : token(id)}.>`,
  /** Every event of one kind: container, allocator, vetter, settings, manager, sysctl. */
  kindEvents: (kind: string) => `${PREFIX}.evt.${token(kind)}.>`,
  /** The audit events of one container's vetted calls (or of all: '*'). */
  vetterEvents: (id = '*') => `${PREFIX}.evt.vetter.${id === '*' ? '*' : token(id)}.>`,
  allocatorEvent: (event: string) => `${PREFIX}.evt.allocator.${token(event)}`,
  managerEvent: (event: string) => `${PREFIX}.evt.manager.${token(event)}`,
  settingsEvent: (event: string) => `${PREFIX}.evt.settings.${token(event)}`,
  vetterEvent: (id: string) => `${PREFIX}.evt.vetter.${token(id)}.decision`,
  /** Decisions over a container's audit share, counted (actors/audit-coalescer.ts). */
  vetterCoalesced: (id: string) => `${PREFIX}.evt.vetter.${token(id)}.coalesced`,
  /** Request/reply: a seccomp notification to judge (payload: VetRequest; answer: Verdict). */
  vetterDecide: (id: string) => `${PREFIX}.vetter.decide.${id === '*' ? '*' : token(id)}`,
  /** Request/reply endpoints of the allocator actor. */
  allocatorAllocate: `${PREFIX}.allocator.allocate`,
  allocatorFree: `${PREFIX}.allocator.free`,
  allocatorList: `${PREFIX}.allocator.list`,
} as const;

// ---------- sysctl reconciler (appended) ----------
/** KV bucket of the sysctl reconciler: `baseline.<key>` and `container.<id>` records. */
export const SYSCTL_BUCKET = 'eci-sysctl';

/** `fs.file-max` -> `fs-file-max`: a sysctl name as one subject token. */
export const sysctlToken = (key: string) => token(key.replace(/\./g, '-'));

export const sysctlSubjects = {
  /** `eci.v1.evt.sysctl.<key-with-dashes>.written`: the reconciler changed a host sysctl. */
  written: (key: string) => `${PREFIX}.evt.sysctl.${key === '*' ? '*' : sysctlToken(key)}.written`,
  /** `eci.v1.evt.sysctl.<key-with-dashes>.baseline`: an outside change of the host value became the baseline. */
  baseline: (key: string) => `${PREFIX}.evt.sysctl.${key === '*' ? '*' : sysctlToken(key)}.baseline`,
  /** Request/reply: {container, key, value} -> {ok: true} | {ok: false, code, reason}. */
  set: `${PREFIX}.sysctl.set`,
  /** Request/reply: {container, key} -> {ok: true, value?: number} (value absent: the container set none). */
  get: `${PREFIX}.sysctl.get`,
} as const;
