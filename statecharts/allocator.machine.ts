// Exclusive uid/gid ranges: index i covers host ids base + i*size .. +size-1, the same for uid and
// gid. One allocation is persisted at a time (persisting state), so two containers can never be
// handed the same index; requests that arrive meanwhile wait in a de-duplicated queue.
import { assign, setup } from 'xstate';
import type { AllocationResult, AllocatorEvent, IdRange } from './events.ts';

export interface AllocatorConfig { base: number; size: number; count: number }

export interface AllocatorContext extends AllocatorConfig {
  /** index -> owner (container id). */
  held: Record<number, string>;
  queue: string[];
  pending?: { owner: string; index: number };
}

export function rangeOf(c: AllocatorConfig, index: number): IdRange {
  return { hostID: c.base + index * c.size, size: c.size };
}

export function indexOf(held: Record<number, string>, owner: string): number | undefined {
  for (const [i, o] of Object.entries(held)) if (o === owner) return Number(i);
  return undefined;
}

export function lowestFree(c: AllocatorContext): number | undefined {
  for (let i = 0; i < c.count; i++) {
    if (c.held[i] === undefined && c.pending?.index !== i) return i;
  }
  return undefined;
}

const ok = (c: AllocatorContext, owner: string, index: number): AllocationResult => ({
  ok: true, owner, index, uid: rangeOf(c, index), gid: rangeOf(c, index),
});

export const allocatorMachine = setup({
  types: {
    context: {} as AllocatorContext,
    events: {} as AllocatorEvent,
    input: {} as AllocatorConfig,
  },
  actions: {
    /** Write index -> owner with compare-and-set; answer with persisted / persist.conflict / persist.failed. */
    persistRange: (_, _p: { owner: string; index: number; uid: IdRange; gid: IdRange }) => {},
    /** Delete index from the store and announce it. */
    releaseRange: (_, _p: { owner: string; index: number; uid: IdRange; gid: IdRange }) => {},
    respond: (_, _p: AllocationResult) => {},
  },
  guards: {
    hasQueue: ({ context }) => context.queue.length > 0,
    headHeld: ({ context }) => indexOf(context.held, context.queue[0]) !== undefined,
    noneFree: ({ context }) => lowestFree(context) === undefined,
    isPending: ({ context, event }) =>
      'index' in event && context.pending?.owner === event.owner && context.pending.index === event.index,
    holdsRange: ({ context, event }) => 'owner' in event && indexOf(context.held, event.owner) !== undefined,
  },
}).createMachine({
  id: 'allocator',
  context: ({ input }) => ({ ...input, held: {}, queue: [] }),
  initial: 'loading',
  on: {
    free: {
      guard: 'holdsRange',
      actions: [
        {
          type: 'releaseRange',
          params: ({ context, event }) => {
            const index = indexOf(context.held, event.owner)!;
            return { owner: event.owner, index, uid: rangeOf(context, index), gid: rangeOf(context, index) };
          },
        },
        assign({
          held: ({ context, event }) => {
            const held = { ...context.held };
            delete held[indexOf(held, event.owner)!];
            return held;
          },
        }),
      ],
    },
  },
  states: {
    loading: {
      on: {
        restore: { target: 'ready', actions: assign({ held: ({ event }) => ({ ...event.held }) }) },
      },
    },
    ready: {
      always: { guard: 'hasQueue', target: 'assigning' },
      on: {
        allocate: { actions: assign({ queue: ({ context, event }) => [...context.queue, event.owner] }) },
      },
    },
    assigning: {
      always: [
        {
          guard: 'headHeld',
          target: 'ready',
          actions: [
            { type: 'respond', params: ({ context }) => ok(context, context.queue[0], indexOf(context.held, context.queue[0])!) },
            assign({ queue: ({ context }) => context.queue.slice(1) }),
          ],
        },
        {
          guard: 'noneFree',
          target: 'ready',
          actions: [
            {
              type: 'respond',
              params: ({ context }): AllocationResult => ({
                ok: false, owner: context.queue[0], code: 'EXHAUSTED',
                reason: `no free uid/gid range: all ${context.count} ranges of ${context.size} ids from ${context.base} are in use`,
              }),
            },
            assign({ queue: ({ context }) => context.queue.slice(1) }),
          ],
        },
        {
          target: 'persisting',
          actions: [
            assign({
              pending: ({ context }) => ({ owner: context.queue[0], index: lowestFree(context)! }),
              queue: ({ context }) => context.queue.slice(1),
            }),
            {
              type: 'persistRange',
              params: ({ context }) => ({
                owner: context.pending!.owner, index: context.pending!.index,
                uid: rangeOf(context, context.pending!.index), gid: rangeOf(context, context.pending!.index),
              }),
            },
          ],
        },
      ],
    },
    persisting: {
      on: {
        allocate: {
          // The same owner asking twice gets one range: drop duplicates of the pending or queued.
          guard: ({ context, event }) => context.pending?.owner !== event.owner && !context.queue.includes(event.owner),
          actions: assign({ queue: ({ context, event }) => [...context.queue, event.owner] }),
        },
        persisted: {
          guard: 'isPending',
          target: 'ready',
          actions: [
            assign({ held: ({ context, event }) => ({ ...context.held, [event.index]: event.owner }), pending: undefined }),
            { type: 'respond', params: ({ context, event }) => ok(context, event.owner, event.index) },
          ],
        },
        'persist.conflict': {
          // Someone else holds the index in the store (another manager, or state we did not load):
          // record it and try the next free index for the same owner.
          guard: 'isPending',
          target: 'ready',
          actions: assign({
            held: ({ context, event }) => ({ ...context.held, [event.index]: event.holder }),
            queue: ({ context, event }) => [event.owner, ...context.queue],
            pending: undefined,
          }),
        },
        'persist.failed': {
          guard: 'isPending',
          target: 'ready',
          actions: [
            assign({ pending: undefined }),
            {
              type: 'respond',
              params: ({ event }): AllocationResult => ({ ok: false, owner: event.owner, code: 'EPERSIST', reason: event.reason }),
            },
          ],
        },
      },
    },
  },
});

export type AllocatorMachine = typeof allocatorMachine;
