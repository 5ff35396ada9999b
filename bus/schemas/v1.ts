// Event payloads, version 1. Every event is an envelope {v, type, id, ts, data}; `id` is a ulid
// that doubles as the JetStream message id, so a re-published event is dropped as a duplicate.
// Additive changes stay in v1; a breaking change publishes v2 beside v1 until consumers move.

import type { IdRange } from '../../statecharts/events.ts';

/** A host id range on the wire: the one IdRange (statecharts/events.ts), under its v1 name. */
export type IdRangeV1 = IdRange;

export interface Envelope<T extends string = string, D = unknown> {
  v: 1;
  type: T;
  id: string;
  ts: string;
  data: D;
}

export type ContainerState = 'created' | 'mapped' | 'mounted' | 'running' | 'stopped' | 'failed';

export interface ContainerTransitionData {
  container: string;
  state: ContainerState;
  /** The previous state, absent for the first event of a container. */
  from?: ContainerState;
  uid?: IdRangeV1;
  gid?: IdRangeV1;
  rootfs?: string;
  bundle?: string;
  reason?: string;
  /** The group whose user namespace and range the container shares (its own id when it joined nobody). */
  group?: string;
}

export interface RangeData { container: string; index: number; uid: IdRangeV1; gid: IdRangeV1 }

export type ContainerEvent = Envelope<`container.${ContainerState}`, ContainerTransitionData>;
export type RangeEvent = Envelope<'allocator.allocated' | 'allocator.freed', RangeData>;
export type ManagerEvent = Envelope<'manager.started' | 'manager.stopping', { pid: number; version: string; nats: string }>;
/** The manager found its embedded nats-server dead and started it again on the same store. */
export type BusEvent = Envelope<'manager.nats-restarted', { pid: number; oldNatsPid: number; natsPid: number }>;
export type SettingsEvent = Envelope<'settings.changed' | 'settings.rejected', { path: string; settings?: unknown; error?: string }>;
export interface VetterDecisionData {
  container: string; pid: number; syscall: string; strings: Record<string, string | null>; flags?: string;
  verdict: 'performed' | 'refused' | 'continued'; errno?: string; reason: string; latencyUs: number;
  /** Where latencyUs went: getting the verdict, carrying it out, answering the kernel. */
  /** inspect: arguments read in the native watcher; queue: from there into the feed (the hop into Node). */
  /** answered by the performer (answeredBy 'performer'): perform ends at its answer, respond is 0, after is the hop back (not the caller's time). */
  spansUs?: { inspect?: number; queue?: number; decide: number; perform: number; respond: number; after?: number };
  /** Who answered the kernel: the manager (absent) or the container's performer. */
  answeredBy?: 'performer';
  /**
   * 'native': the call took the fast path (the native watcher matched a rule the vetter compiled and
   * sent it to the performer itself, no hop through the manager's event loop; fastRule names the rule).
   * Absent: the vetter actor judged it. decide is then the audit's own judging, after the answer.
   */
  path?: 'native';
  fastRule?: string;
}
export type VetterEvent = Envelope<'vetter.decision', VetterDecisionData>;
/** Decisions of one kind over the container's audit share in one second, counted instead of sent one by one. */
export interface VetterCoalescedData {
  container: string; syscall: string; verdict: 'performed' | 'refused' | 'continued'; errno?: string;
  /** The first counted decision's reason. */
  reason: string; count: number; from: string; to: string;
}
export type VetterCoalescedEvent = Envelope<'vetter.decisions-coalesced', VetterCoalescedData>;
export type EciEvent = ContainerEvent | RangeEvent | ManagerEvent | BusEvent | SettingsEvent | VetterEvent | VetterCoalescedEvent;

/** Every v1 event type, and the data an event of that type carries: a publisher names both together. */
export type AnyEventV1 = EciEvent | SysctlEvent;
export type EventType = AnyEventV1['type'];
/** An envelope may cover several types (`allocator.allocated | allocator.freed`): find the one covering T. */
type DataOf<E, T> = E extends Envelope<infer U, infer D> ? (T extends U ? D : never) : never;
export type EventData<T extends EventType> = DataOf<AnyEventV1, T>;

export class SchemaError extends Error {
  readonly code = 'ESCHEMA';
}

const STATES: readonly string[] = ['created', 'mapped', 'mounted', 'running', 'stopped', 'failed'];

function isRange(r: unknown): r is IdRangeV1 {
  const o = r as IdRangeV1;
  return !!o && Number.isInteger(o.hostID) && Number.isInteger(o.size) && o.size > 0;
}

/** Checks an event read back from the bus; throws SchemaError naming the first bad field. */
export function validateEvent(x: unknown): EciEvent {
  const e = x as Envelope;
  if (!e || typeof e !== 'object') throw new SchemaError('event is not an object');
  if (e.v !== 1) throw new SchemaError(`event.v: expected 1, got ${JSON.stringify(e.v)}`);
  if (typeof e.type !== 'string') throw new SchemaError('event.type: expected a string');
  if (typeof e.id !== 'string' || !/^[0-9A-HJKMNP-TV-Z]{26}$/.test(e.id)) throw new SchemaError('event.id: expected a ulid');
  if (typeof e.ts !== 'string' || Number.isNaN(Date.parse(e.ts))) throw new SchemaError('event.ts: expected an ISO time');
  const d = e.data as Record<string, unknown>;
  if (!d || typeof d !== 'object') throw new SchemaError('event.data: expected an object');
  if (e.type.startsWith('container.')) {
    const state = e.type.slice('container.'.length);
    if (!STATES.includes(state) || d.state !== state) throw new SchemaError(`event.data.state: does not match type ${e.type}`);
    if (typeof d.container !== 'string') throw new SchemaError('event.data.container: expected a string');
    if (d.uid !== undefined && !isRange(d.uid)) throw new SchemaError('event.data.uid: expected {hostID,size}');
    if (d.group !== undefined && typeof d.group !== 'string') throw new SchemaError('event.data.group: expected a string');
  } else if (e.type === 'allocator.allocated' || e.type === 'allocator.freed') {
    if (typeof d.container !== 'string' || !Number.isInteger(d.index) || !isRange(d.uid) || !isRange(d.gid)) {
      throw new SchemaError(`event.data: expected {container,index,uid,gid} for ${e.type}`);
    }
  } else if (e.type === 'manager.started' || e.type === 'manager.stopping') {
    if (!Number.isInteger(d.pid)) throw new SchemaError('event.data.pid: expected an integer');
  } else if (e.type === 'manager.nats-restarted') {
    if (!Number.isInteger(d.pid) || !Number.isInteger(d.natsPid)) throw new SchemaError('event.data: expected {pid, oldNatsPid, natsPid} for manager.nats-restarted');
  } else if (e.type === 'vetter.decision') {
    if (typeof d.container !== 'string' || typeof d.syscall !== 'string' || !['performed', 'refused', 'continued'].includes(d.verdict as string)) {
      throw new SchemaError('event.data: expected {container, syscall, verdict} for vetter.decision');
    }
  } else if (e.type === 'vetter.decisions-coalesced') {
    if (typeof d.container !== 'string' || typeof d.syscall !== 'string' || !Number.isInteger(d.count) || (d.count as number) < 1) {
      throw new SchemaError('event.data: expected {container, syscall, verdict, count} for vetter.decisions-coalesced');
    }
  } else if (e.type === 'sysctl.written' || e.type === 'sysctl.baseline') {
    validateSysctlEvent(e);
  } else if (e.type === 'settings.changed' || e.type === 'settings.rejected') {
    if (typeof d.path !== 'string') throw new SchemaError('event.data.path: expected a string');
  } else {
    throw new SchemaError(`event.type: unknown type ${JSON.stringify(e.type)}`);
  }
  return e as EciEvent;
}

// ---------- sysctl reconciler (appended) ----------
/** The reconciler wrote a host sysctl: `old` -> `new`, because of `container` (or 'restore'). */
export interface SysctlWrittenData { key: string; old: number; new: number; container: string }
/**
 * `sysctl.baseline`: the host value was changed by someone else (an admin) since the reconciler's
 * last write; it became the new baseline (`old` -> `new`), `container` is 'host'.
 */
export type SysctlEvent = Envelope<'sysctl.written' | 'sysctl.baseline', SysctlWrittenData>;

/** Checks a `sysctl.written` or `sysctl.baseline` event; throws SchemaError naming the first bad field. */
export function validateSysctlEvent(x: unknown): SysctlEvent {
  const e = x as Envelope;
  if (!e || typeof e !== 'object') throw new SchemaError('event is not an object');
  if (e.v !== 1) throw new SchemaError(`event.v: expected 1, got ${JSON.stringify(e.v)}`);
  if (e.type !== 'sysctl.written' && e.type !== 'sysctl.baseline') throw new SchemaError(`event.type: expected sysctl.written or sysctl.baseline, got ${JSON.stringify(e.type)}`);
  if (typeof e.id !== 'string' || !/^[0-9A-HJKMNP-TV-Z]{26}$/.test(e.id)) throw new SchemaError('event.id: expected a ulid');
  if (typeof e.ts !== 'string' || Number.isNaN(Date.parse(e.ts))) throw new SchemaError('event.ts: expected an ISO time');
  const d = e.data as Record<string, unknown>;
  if (!d || typeof d !== 'object') throw new SchemaError('event.data: expected an object');
  if (typeof d.key !== 'string' || !/^[a-z0-9_-]+(\.[a-z0-9_-]+)+$/.test(d.key)) throw new SchemaError('event.data.key: expected a sysctl name');
  if (!Number.isSafeInteger(d.old)) throw new SchemaError('event.data.old: expected an integer');
  if (!Number.isSafeInteger(d.new)) throw new SchemaError('event.data.new: expected an integer');
  if (typeof d.container !== 'string' || d.container === '') throw new SchemaError('event.data.container: expected a string');
  return e as SysctlEvent;
}
