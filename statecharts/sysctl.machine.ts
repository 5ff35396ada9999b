// Host sysctls that a container may raise ("host = max" in Sysbox): for every reconciled key the
// machine keeps the host's baseline (its value before any container touched it) and the value each
// live container set. The host must hold max(baseline, live container values); unlike Sysbox, the
// host goes back down when the container that raised it is gone. One host write is in flight at a
// time (`writing`, like the allocator's `persisting`); changes that arrive meanwhile are picked up
// when it settles. A failed write is not retried until the wanted value changes again.
// Before each write the actor compares the host with the value the machine believes it holds: a
// difference means someone else (an admin) changed it meanwhile, and that value becomes the new
// baseline (`host.changed`), instead of being silently overwritten with a stale one.
import { assign, setup } from 'xstate';

export interface SysctlEntry {
  /** The host value before any container raised it. */
  baseline: number;
  /** The value the host holds, as far as we know (last read or written). */
  host: number;
  /** container id -> the value it set. */
  containers: Record<string, number>;
  /** Why the wanted value last changed: a container id, or 'restore'. */
  cause?: string;
  /** A wanted value whose write failed; not tried again until the wanted value changes. */
  failed?: number;
}

export interface SysctlContext {
  entries: Record<string, SysctlEntry>;
  pending?: { key: string; old: number; new: number; cause: string };
}

export type SysctlEvent =
  | { type: 'restore'; entries: Record<string, { baseline: number; host: number; containers?: Record<string, number> }> }
  | { type: 'container.set'; container: string; key: string; value: number }
  | { type: 'container.gone'; container: string }
  | { type: 'host.written'; key: string; value: number }
  | { type: 'host.failed'; key: string; reason: string }
  /** Instead of host.written: the host did not hold `pending.old` but `value` (an outside change); nothing was written. */
  | { type: 'host.changed'; key: string; value: number };

export interface WriteHostParams { key: string; old: number; new: number; cause: string }
export interface SaveContainerParams { container: string; values: Record<string, number> }
export interface SaveBaselineParams { key: string; old: number; new: number }

/** Every value container `container` set, by key. */
export function valuesOf(c: SysctlContext, container: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, e] of Object.entries(c.entries)) if (container in e.containers) out[k] = e.containers[container];
  return out;
}

/** max(baseline, values of live containers). */
export function wanted(e: SysctlEntry): number {
  return Math.max(e.baseline, ...Object.values(e.containers));
}

/** The first key (in insertion order) whose host value differs from the wanted one and did not just fail. */
export function nextWrite(c: SysctlContext): WriteHostParams | undefined {
  for (const [key, e] of Object.entries(c.entries)) {
    const w = wanted(e);
    if (w !== e.host && w !== e.failed) return { key, old: e.host, new: w, cause: e.cause ?? 'restore' };
  }
  return undefined;
}

/** The entry after `update`, with `failed` cleared when the wanted value moved. */
function changed(e: SysctlEntry, containers: Record<string, number>, cause: string): SysctlEntry {
  const next: SysctlEntry = { ...e, containers };
  if (wanted(next) !== wanted(e)) {
    next.cause = cause;
    delete next.failed;
  }
  return next;
}

export const sysctlMachine = setup({
  types: {
    context: {} as SysctlContext,
    events: {} as SysctlEvent,
  },
  actions: {
    /** Write `new` to the host file of `key`; answer host.written or host.failed. */
    writeHost: (_, _p: WriteHostParams) => {},
    /** Persist the values `container` set (all keys). */
    saveContainer: (_, _p: SaveContainerParams) => {},
    /** Forget the persisted values of `container`. */
    forgetContainer: (_, _p: { container: string }) => {},
    /** Persist (and announce) a new baseline adopted from an outside change of the host value. */
    saveBaseline: (_, _p: SaveBaselineParams) => {},
  },
  guards: {
    needsWrite: ({ context }) => nextWrite(context) !== undefined,
    knownKey: ({ context, event }) => 'key' in event && context.entries[event.key] !== undefined,
    isPending: ({ context, event }) =>
      event.type === 'host.written' ? context.pending?.key === event.key && context.pending.new === event.value
        : (event.type === 'host.failed' || event.type === 'host.changed') && context.pending?.key === event.key,
  },
}).createMachine({
  id: 'sysctl',
  context: { entries: {} },
  initial: 'loading',
  on: {
    'container.set': {
      guard: 'knownKey',
      actions: [
        assign({
          entries: ({ context, event }) => {
            const e = context.entries[event.key];
            return { ...context.entries, [event.key]: changed(e, { ...e.containers, [event.container]: event.value }, event.container) };
          },
        }),
        {
          type: 'saveContainer',
          params: ({ context, event }) => ({ container: event.container, values: valuesOf(context, event.container) }),
        },
      ],
    },
    'container.gone': {
      actions: [
        { type: 'forgetContainer', params: ({ event }) => ({ container: event.container }) },
        assign({
          entries: ({ context, event }) => {
            const out: Record<string, SysctlEntry> = {};
            for (const [k, e] of Object.entries(context.entries)) {
              if (!(event.container in e.containers)) { out[k] = e; continue; }
              const containers = { ...e.containers };
              delete containers[event.container];
              out[k] = changed(e, containers, event.container);
            }
            return out;
          },
        }),
      ],
    },
  },
  states: {
    loading: {
      on: {
        // Container events before the restore are dropped by the knownKey guard (no entries yet).
        restore: {
          target: 'ready',
          actions: assign({
            entries: ({ event }) => Object.fromEntries(Object.entries(event.entries).map(([k, e]) =>
              [k, { baseline: e.baseline, host: e.host, containers: { ...(e.containers ?? {}) }, cause: 'restore' }])),
          }),
        },
      },
    },
    ready: {
      always: {
        guard: 'needsWrite',
        target: 'writing',
        actions: [
          assign({ pending: ({ context }) => nextWrite(context) }),
          { type: 'writeHost', params: ({ context }) => context.pending! },
        ],
      },
    },
    writing: {
      on: {
        'host.written': {
          guard: 'isPending',
          target: 'ready',
          actions: assign({
            entries: ({ context, event }) => ({ ...context.entries, [event.key]: { ...context.entries[event.key], host: event.value } }),
            pending: undefined,
          }),
        },
        'host.changed': {
          guard: 'isPending',
          target: 'ready',
          actions: [
            {
              type: 'saveBaseline',
              params: ({ context, event }) => ({ key: event.key, old: context.entries[event.key].baseline, new: event.value }),
            },
            assign({
              entries: ({ context, event }) => {
                const e = context.entries[event.key];
                const next: SysctlEntry = { ...e, baseline: event.value, host: event.value, cause: context.pending!.cause };
                delete next.failed;
                return { ...context.entries, [event.key]: next };
              },
              pending: undefined,
            }),
          ],
        },
        'host.failed': {
          guard: 'isPending',
          target: 'ready',
          actions: assign({
            entries: ({ context, event }) => ({ ...context.entries, [event.key]: { ...context.entries[event.key], failed: context.pending!.new } }),
            pending: undefined,
          }),
        },
      },
    },
  },
});

export type SysctlMachine = typeof sysctlMachine;
