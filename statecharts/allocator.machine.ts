// Exclusive uid/gid ranges: index i covers host ids base + i*size .. +size-1, the same for uid and
// gid. Several allocations may be persisting at once, each on its own index (`pending`): an index is
// handed to one owner only while no other owner holds it or has a write in flight for it, so two
// containers can never be handed the same index. A request waits in a de-duplicated queue only when
// every index that is not held has a write in flight; the order of writes to one index (a release
// before the next persist of it) is kept by whoever runs the effects.
import { assign, setup } from 'xstate';
import type { AllocationResult, AllocatorEvent, IdRange } from './events.ts';

export interface AllocatorConfig { base: number; size: number; count: number }

export interface AllocatorContext extends AllocatorConfig {
  /** index -> owner (container id). */
  held: Record<number, string>;
  queue: string[];
  /** index -> owner whose compare-and-set write of that index is in flight. */
  pending: Record<number, string>;
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
    if (c.held[i] === undefined && c.pending[i] === undefined) return i;
  }
  return undefined;
}

const ok = (c: AllocatorContext, owner: string, index: number): AllocationResult => ({
  ok: true, owner, index, uid: rangeOf(c, index), gid: rangeOf(c, index),
});

const without = (m: Record<number, string>, index: number): Record<number, string> => {
  const out = { ...m };
  delete out[index];
  return out;
};

const anyPending = (c: AllocatorContext) => Object.keys(c.pending).length > 0;

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
    headHeld: ({ context }) => context.queue.length > 0 && indexOf(context.held, context.queue[0]) !== undefined,
    headFits: ({ context }) => context.queue.length > 0 && lowestFree(context) !== undefined,
    // Exhausted only when no write in flight can still give an index back (a failed or conflicting one).
    headExhausted: ({ context }) => context.queue.length > 0 && lowestFree(context) === undefined && !anyPending(context),
    isPending: ({ context, event }) => 'index' in event && context.pending[event.index] === event.owner,
    holdsRange: ({ context, event }) => 'owner' in event && indexOf(context.held, event.owner) !== undefined,
    // The same owner asking twice gets one range: drop duplicates of a pending or queued request.
    isNewRequest: ({ context, event }) =>
      'owner' in event && indexOf(context.pending, event.owner) === undefined && !context.queue.includes(event.owner),
  },
}).createMachine({
  id: 'allocator',
  context: ({ input }) => ({ ...input, held: {}, queue: [], pending: {} }),
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
        assign({ held: ({ context, event }) => without(context.held, indexOf(context.held, event.owner)!) }),
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
      // Serves the queue head for as long as it can be served: several persists start in one step.
      always: [
        {
          guard: 'headHeld',
          actions: [
            { type: 'respond', params: ({ context }) => ok(context, context.queue[0], indexOf(context.held, context.queue[0])!) },
            assign({ queue: ({ context }) => context.queue.slice(1) }),
          ],
        },
        {
          guard: 'headFits',
          actions: [
            // Before the assign: the params see the head and the index it gets.
            {
              type: 'persistRange',
              params: ({ context }) => {
                const index = lowestFree(context)!;
                return { owner: context.queue[0], index, uid: rangeOf(context, index), gid: rangeOf(context, index) };
              },
            },
            assign({
              pending: ({ context }) => ({ ...context.pending, [lowestFree(context)!]: context.queue[0] }),
              queue: ({ context }) => context.queue.slice(1),
            }),
          ],
        },
        {
          guard: 'headExhausted',
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
      ],
      on: {
        allocate: {
          guard: 'isNewRequest',
          actions: assign({ queue: ({ context, event }) => [...context.queue, event.owner] }),
        },
        persisted: {
          guard: 'isPending',
          actions: [
            assign({
              held: ({ context, event }) => ({ ...context.held, [event.index]: event.owner }),
              pending: ({ context, event }) => without(context.pending, event.index),
            }),
            { type: 'respond', params: ({ context, event }) => ok(context, event.owner, event.index) },
          ],
        },
        'persist.conflict': {
          // Someone else holds the index in the store (another manager, or state we did not load):
          // record it and try the next free index for the same owner, ahead of the queue.
          guard: 'isPending',
          actions: assign({
            held: ({ context, event }) => ({ ...context.held, [event.index]: event.holder }),
            queue: ({ context, event }) => [event.owner, ...context.queue],
            pending: ({ context, event }) => without(context.pending, event.index),
          }),
        },
        'persist.failed': {
          guard: 'isPending',
          actions: [
            assign({ pending: ({ context, event }) => without(context.pending, event.index) }),
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
