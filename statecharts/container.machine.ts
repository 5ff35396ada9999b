// The lifecycle of one container: created -> mapped -> mounted -> running -> stopped, or failed
// with a reason. Effects are named stubs; container.actor.ts provides them. Results of effects come
// back as events, so every path can be walked by a model test without I/O.
import { assign, setup } from 'xstate';
import type { ContainerEvent, ContainerStateName, IdRange, MountRef } from './events.ts';

export interface ContainerContext {
  id: string;
  bundle: string;
  index?: number;
  uid?: IdRange;
  gid?: IdRange;
  rootfs?: string;
  /** The mounts eci made for the rootfs (newest last); cleanup unmounts exactly these. */
  mounts?: MountRef[];
  runcCreated: boolean;
  reason?: string;
}

export interface ContainerInput { id: string; bundle: string }

/** Payload of the `publish` effect: what changed, for events and the KV record. */
export interface TransitionParams { state: ContainerStateName; context: ContainerContext }

export const RANGE_TIMEOUT_MS = 10_000;
export const ROOTFS_TIMEOUT_MS = 30_000;

export const containerSetup = setup({
  types: {
    context: {} as ContainerContext,
    events: {} as ContainerEvent,
    input: {} as ContainerInput,
  },
  actions: {
    publish: (_, _p: TransitionParams) => {},
    allocateRange: (_, _p: { id: string }) => {},
    mountRootfs: (_, _p: { id: string; bundle: string; uid: IdRange; gid: IdRange }) => {},
    /** Undo whatever is held: unmount the rootfs, free the range. Idempotent. */
    releaseResources: (_, _p: { id: string; mounts?: MountRef[]; index?: number }) => {},
  },
  guards: {
    runcCreated: ({ context }) => context.runcCreated,
  },
  delays: {
    rangeTimeout: RANGE_TIMEOUT_MS,
    rootfsTimeout: ROOTFS_TIMEOUT_MS,
  },
});

/** The machine's config, kept apart so model tests can derive a variant (see test/model). */
export const containerConfig = {
  id: 'container',
  context: ({ input }) => ({ id: input.id, bundle: input.bundle, runcCreated: false }),
  initial: 'created',
  states: {
    created: {
      entry: [
        { type: 'publish', params: ({ context }) => ({ state: 'created' as const, context }) },
        { type: 'allocateRange', params: ({ context }) => ({ id: context.id }) },
      ],
      on: {
        'range.allocated': {
          target: 'mapped',
          actions: assign({ index: ({ event }) => event.index, uid: ({ event }) => event.uid, gid: ({ event }) => event.gid }),
        },
        'range.failed': { target: 'failed', actions: assign({ reason: ({ event }) => event.reason }) },
        delete: { target: 'failed', actions: assign({ reason: 'deleted before it was mapped' }) },
      },
      after: { rangeTimeout: { target: 'failed', actions: assign({ reason: 'timed out waiting for a uid/gid range from the allocator' }) } },
    },
    mapped: {
      entry: [
        { type: 'publish', params: ({ context }) => ({ state: 'mapped' as const, context }) },
        { type: 'mountRootfs', params: ({ context }) => ({ id: context.id, bundle: context.bundle, uid: context.uid!, gid: context.gid! }) },
      ],
      on: {
        'rootfs.mounted': { target: 'mounted', actions: assign({ rootfs: ({ event }) => event.path, mounts: ({ event }) => event.mounts }) },
        'rootfs.failed': { target: 'failed', actions: assign({ reason: ({ event }) => event.reason }) },
        delete: { target: 'failed', actions: assign({ reason: 'deleted before its rootfs was mounted' }) },
      },
      after: { rootfsTimeout: { target: 'failed', actions: assign({ reason: 'timed out mounting the rootfs' }) } },
    },
    mounted: {
      entry: { type: 'publish', params: ({ context }) => ({ state: 'mounted' as const, context }) },
      on: {
        'runc.created': { actions: assign({ runcCreated: true }) },
        'runc.failed': { target: 'failed', actions: assign({ reason: ({ event }) => event.reason }) },
        start: { guard: 'runcCreated', target: 'running' },
        delete: 'stopped',
      },
    },
    running: {
      entry: { type: 'publish', params: ({ context }) => ({ state: 'running' as const, context }) },
      on: { delete: 'stopped' },
    },
    stopped: {
      type: 'final',
      entry: [
        { type: 'publish', params: ({ context }) => ({ state: 'stopped' as const, context }) },
        { type: 'releaseResources', params: ({ context }) => ({ id: context.id, mounts: context.mounts, index: context.index }) },
      ],
    },
    failed: {
      type: 'final',
      entry: [
        { type: 'publish', params: ({ context }) => ({ state: 'failed' as const, context }) },
        { type: 'releaseResources', params: ({ context }) => ({ id: context.id, mounts: context.mounts, index: context.index }) },
      ],
    },
  },
} satisfies Parameters<typeof containerSetup.createMachine>[0];

export const containerMachine = containerSetup.createMachine(containerConfig);

export type ContainerMachine = typeof containerMachine;
