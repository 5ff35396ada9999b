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
  /**
   * The host view of an overlay rootfs is mounted beside `runc create` (which does not use it): until
   * rootfs.viewed or rootfs.viewFailed comes, the container is not created, and a delete or runc.failed
   * only sets `leaving`, so that the release takes the view down too.
   */
  viewPending?: boolean;
  /** Why the host view could not be mounted (the create fails: runc.created is refused). */
  viewError?: string;
  /** Where a delete or runc.failed that came while the view was pending goes once it has come. */
  leaving?: 'stopped' | 'failed';
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
    /** Rewrite the KV record in the same state (the mounts changed). */
    record: (_, _p: TransitionParams) => {},
    allocateRange: (_, _p: { id: string }) => {},
    mountRootfs: (_, _p: { id: string; bundle: string; uid: IdRange; gid: IdRange }) => {},
    /** The host view joins the mounts (newest last: the release takes it down first). */
    addView: assign({
      mounts: ({ context, event }) => (event.type === 'rootfs.viewed' ? [...(context.mounts ?? []), event.mount] : context.mounts),
      viewPending: undefined,
    }),
    /** Undo whatever is held: unmount the rootfs, free the range. Idempotent. */
    releaseResources: (_, _p: { id: string; mounts?: MountRef[]; index?: number }) => {},
  },
  guards: {
    runcCreated: ({ context }) => context.runcCreated,
    viewPending: ({ context }) => context.viewPending === true,
    viewSettled: ({ context }) => !context.viewPending && context.viewError === undefined,
    leavingStopped: ({ context }) => context.leaving === 'stopped',
    leavingFailed: ({ context }) => context.leaving === 'failed',
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
        'rootfs.mounted': {
          target: 'mounted',
          actions: assign({ rootfs: ({ event }) => event.path, mounts: ({ event }) => event.mounts, viewPending: ({ event }) => (event.viewPending ? true : undefined) }),
        },
        'rootfs.failed': { target: 'failed', actions: assign({ reason: ({ event }) => event.reason }) },
        delete: { target: 'failed', actions: assign({ reason: 'deleted before its rootfs was mounted' }) },
      },
      after: { rootfsTimeout: { target: 'failed', actions: assign({ reason: 'timed out mounting the rootfs' }) } },
    },
    mounted: {
      entry: { type: 'publish', params: ({ context }) => ({ state: 'mounted' as const, context }) },
      on: {
        'rootfs.viewed': [
          { guard: 'leavingStopped', target: 'stopped', actions: 'addView' },
          { guard: 'leavingFailed', target: 'failed', actions: 'addView' },
          { guard: 'viewPending', actions: ['addView', { type: 'record', params: ({ context }) => ({ state: 'mounted' as const, context }) }] },
        ],
        'rootfs.viewFailed': [
          { guard: 'leavingStopped', target: 'stopped', actions: assign({ viewPending: undefined }) },
          { guard: 'leavingFailed', target: 'failed', actions: assign({ viewPending: undefined }) },
          { guard: 'viewPending', actions: assign({ viewPending: undefined, viewError: ({ event }) => event.reason }) },
        ],
        'runc.created': { guard: 'viewSettled', actions: assign({ runcCreated: true }) },
        'runc.failed': [
          { guard: 'viewPending', actions: assign({ leaving: 'failed' as const, reason: ({ event }) => event.reason }) },
          { target: 'failed', actions: assign({ reason: ({ event }) => event.reason }) },
        ],
        start: { guard: 'runcCreated', target: 'running' },
        delete: [
          { guard: 'viewPending', actions: assign({ leaving: ({ context }) => context.leaving ?? ('stopped' as const) }) },
          { target: 'stopped' },
        ],
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
