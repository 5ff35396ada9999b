// One actor per container: runs the lifecycle machine, performing its effects (a range from the
// in-process allocator, rootfs mapping, release) and feeding their results back as events.
import { createActor, waitFor, type Actor, type SimulatedClock, type SnapshotFrom } from 'xstate';
import { containerMachine, type ContainerContext } from '../statecharts/container.machine.ts';
import type { AllocationResult, ContainerStateName, IdRange, MountRef } from '../statecharts/events.ts';

export interface ContainerDeps {
  requestRange(id: string): Promise<AllocationResult>;
  freeRange(id: string): Promise<void>;
  /**
   * Maps the rootfs; resolves with the path runc uses and the mounts eci made, and, for an overlay, the
   * host view on the engine's path still being mounted (`view`: the mount, or why it failed).
   */
  mountRootfs(id: string, uid: IdRange, gid: IdRange): Promise<{ path: string; mounts: MountRef[]; view?: Promise<MountRef> }>;
  /** Takes down the mounts eci made (newest first, by mount id); resolves with those that would not go. */
  unmountRootfs(id: string, mounts: MountRef[] | undefined): Promise<MountRef[]>;
  /** Removes the run dir, unless a mount in `left` is still on it (logged). */
  removeRunDir(id: string, left: MountRef[]): Promise<void>;
  /** Called on every transition, in order; must not throw. */
  transition(state: ContainerStateName, from: ContainerStateName | undefined, context: ContainerContext): void;
  /** The record rewritten in the same state (its mounts changed: the host view came); must not throw. */
  record?(state: ContainerStateName, context: ContainerContext): void;
}

export interface ContainerRecord {
  state: ContainerStateName;
  context: ContainerContext;
  runcRoot?: string;
  created: string;
}

export interface ContainerActorOptions {
  runcRoot?: string;
  created?: string;
  /** Resume from a record kept in KV (manager restart). */
  restore?: ContainerRecord;
  /** For tests: a simulated clock driving the machine's timeouts. */
  clock?: SimulatedClock;
}

type Self = Actor<typeof containerMachine>;

/** Each running machine's container: the shared machine's actions find their ContainerActor by `self`. */
const owners = new WeakMap<object, ContainerActor>();
function ownerOf(self: object): ContainerActor {
  const c = owners.get(self);
  if (!c) throw new Error('container machine action without its ContainerActor');
  return c;
}

/**
 * One machine with its effects for every container (a `provide` per container rebuilt the whole
 * machine each create: ~0.2 ms of the manager's CPU). The effects themselves are the container's.
 */
const machine = containerMachine.provide({
  actions: {
    publish: ({ self }, p) => ownerOf(self).effects.publish(p),
    record: ({ self }, p) => ownerOf(self).effects.record(p),
    allocateRange: ({ self }, p) => ownerOf(self).effects.allocateRange(self as Self, p),
    mountRootfs: ({ self }, p) => ownerOf(self).effects.mountRootfs(self as Self, p),
    releaseResources: ({ self }, p) => ownerOf(self).effects.releaseResources(p),
  },
});

export class ContainerActor {
  readonly runcRoot?: string;
  readonly created: string;
  /** Container-relative paths of the mounts eci manages (volumes, masked and read-only paths). */
  protectedPaths: string[] = [];
  /** The engine's path of its overlay rootfs, where its host view goes (recorded: a restarted manager may have to mount it). */
  viewTarget?: string;
  readonly actor: Actor<typeof containerMachine>;
  private lastState?: ContainerStateName;
  /**
   * Resolves once eci's mounts are down after the machine reached stopped or failed: all the engine
   * depends on (the host view is on its rootfs path, the overlay uses its upper dir), so `delete` answers then.
   */
  readonly unmounted: Promise<void>;
  /** unmounted has resolved (a later delete has nothing of eci's to wait for). */
  isUnmounted = false;
  /**
   * Set by create when the spec has no poststop hook: runc delete's hooks run after the container is
   * gone and may read its rootfs, so only then may eci's release run beside runc delete. Unknown
   * (a container picked up after a restart): false.
   */
  releaseBesideDelete = false;
  /**
   * Its create call is under way (from the actor's start until create's answer after runc). A delete
   * of the same id meanwhile is not for it: e.g. containerd's clean-up of the previous container's dead
   * shim (`runc delete --force`), which races an engine's restart under the same id.
   */
  createInFlight = false;
  /** The bundle's config.json as the engine wrote it, and the sha256 of eci's rewrite (given back at delete if still that). */
  bundleConfig?: { path: string; original: string; written: string };
  /** Resolves once everything is released: mounts, range, run dir. */
  readonly released: Promise<void>;
  /** The release's steps, ms from its start (debug log). */
  readonly releaseTimes: { unmounted?: number; freed?: number; removed?: number } = {};
  /** Why the release stopped short (then the run dir was kept), for the host to log. */
  releaseError?: Error;
  /** Settles once the host view is in the machine's mounts (undefined) or cannot be (why); see hostViewMounted. */
  private hostView?: Promise<string | undefined>;
  private resolveUnmounted!: () => void;
  private resolveReleased!: () => void;

  constructor(readonly id: string, bundle: string, private deps: ContainerDeps, o: ContainerActorOptions = {}) {
    this.runcRoot = o.runcRoot;
    this.created = o.created ?? new Date().toISOString();
    const restore = o.restore;
    this.unmounted = new Promise((r) => (this.resolveUnmounted = () => { this.isUnmounted = true; r(); }));
    this.released = new Promise((r) => (this.resolveReleased = r));
    if (restore) this.lastState = restore.state;
    const input = { id, bundle };
    const clock = o.clock ? { clock: o.clock } : {};
    this.actor = restore
      ? createActor(machine, { snapshot: machine.resolveState({ value: restore.state, context: restore.context }), input, ...clock })
      : createActor(machine, { input, ...clock });
    owners.set(this.actor, this); // before start: the machine's first action (publish) runs then
  }

  /** The machine's effects for this container (the machine is shared: each action finds its container by `self`). */
  readonly effects = {
    publish: (p: { state: ContainerStateName; context: ContainerContext }) => {
      const from = this.lastState;
      this.lastState = p.state;
      this.deps.transition(p.state, from, p.context);
    },
    allocateRange: (self: Self, p: { id: string }) => {
      this.deps.requestRange(p.id).then(
        (r) => {
          if (self.getSnapshot().status !== 'active') {
            // Deleted while the request was in flight: hand the range straight back.
            if (r.ok) this.deps.freeRange(p.id).catch((e: unknown) => (this.releaseError ??= e as Error));
            return;
          }
          self.send(r.ok ? { type: 'range.allocated', index: r.index, uid: r.uid, gid: r.gid } : { type: 'range.failed', reason: r.reason });
        },
        (e) => self.send({ type: 'range.failed', reason: `cannot allocate a uid/gid range: ${(e as Error).message}` }),
      );
    },
    record: (p: { state: ContainerStateName; context: ContainerContext }) => this.deps.record?.(p.state, p.context),
    mountRootfs: (self: Self, p: { id: string; uid: IdRange; gid: IdRange }) => {
      this.deps.mountRootfs(p.id, p.uid, p.gid).then(
        (m) => {
          if (self.getSnapshot().status !== 'active') {
            // Deleted while mounting: take the late mounts down, the view too once it is up (a failure is kept like a release's).
            const all = m.view ? m.view.then((v) => [...m.mounts, v], () => m.mounts) : Promise.resolve(m.mounts);
            all.then((mounts) => this.deps.unmountRootfs(p.id, mounts)).then((left) => this.deps.removeRunDir(p.id, left)).catch((e: unknown) => {
              this.releaseError ??= e as Error;
            });
            return;
          }
          // Before the send: create's wait for `mounted` must find it.
          if (m.view) this.hostView = this.followView(self, p.id, m.view);
          self.send({ type: 'rootfs.mounted', path: m.path, mounts: m.mounts, ...(m.view ? { viewPending: true } : {}) });
        },
        (e) => self.send({ type: 'rootfs.failed', reason: (e as Error).message }),
      );
    },
    releaseResources: (p: { id: string; mounts?: MountRef[]; index?: number }) => {
      // Unmount first, then free: the range must not be handed out while its rootfs is live. The
      // engine is answered once the mounts are down; the range and the run dir follow.
      const t = performance.now();
      const since = () => +(performance.now() - t).toFixed(2);
      (async () => {
        const left = await this.deps.unmountRootfs(p.id, p.mounts);
        this.releaseTimes.unmounted = since();
        this.resolveUnmounted();
        if (p.index !== undefined) await this.deps.freeRange(p.id);
        this.releaseTimes.freed = since();
        await this.deps.removeRunDir(p.id, left);
        this.releaseTimes.removed = since();
      })().catch((e: unknown) => {
        // The run dir stays with what may still be mounted on it (the host logs why).
        this.releaseError = e as Error;
      }).finally(() => {
        this.resolveUnmounted();
        this.resolveReleased();
      });
    },
  };

  /** Feeds the host view's outcome to the machine; resolves as hostViewMounted does. */
  private followView(self: Self, id: string, view: Promise<MountRef>): Promise<string | undefined> {
    return view.then(
      (mount) => {
        if (self.getSnapshot().status !== 'active') {
          // The machine waits for a pending view; only an actor stopped meanwhile gets here. Nothing else will take it down.
          this.deps.unmountRootfs(id, [mount]).catch((e: unknown) => (this.releaseError ??= e as Error));
          return 'the container went away while its host view was being mounted';
        }
        self.send({ type: 'rootfs.viewed', mount });
        return this.state === 'mounted' ? undefined : 'the container was deleted while its host view was being mounted';
      },
      (e: unknown) => {
        const reason = `cannot mount the host view of the rootfs: ${(e as Error).message}`;
        if (self.getSnapshot().status === 'active') self.send({ type: 'rootfs.viewFailed', reason });
        return reason;
      },
    );
  }

  /**
   * Resolves once the rootfs's host view (mounted beside `runc create`) is among the machine's mounts,
   * with undefined, or with why it is not (its mount failed, the container was deleted meanwhile).
   * No view to wait for (a bind rootfs, a restored container): undefined at once.
   */
  hostViewMounted(): Promise<string | undefined> {
    return this.hostView ?? Promise.resolve(undefined);
  }

  start(): this {
    this.actor.start();
    return this;
  }

  get state(): ContainerStateName {
    return this.actor.getSnapshot().value as ContainerStateName;
  }

  get context(): ContainerContext {
    return this.actor.getSnapshot().context;
  }

  record(): ContainerRecord {
    return { state: this.state, context: this.context, runcRoot: this.runcRoot, created: this.created };
  }

  send(e: Parameters<Actor<typeof containerMachine>['send']>[0]): void {
    if (this.actor.getSnapshot().status === 'active') this.actor.send(e);
  }

  /** Waits until the container is ready for runc (mounted) or has failed. */
  async ready(): Promise<SnapshotFrom<typeof containerMachine>> {
    return waitFor(this.actor, (s) => s.matches('mounted') || s.matches('failed') || s.matches('stopped'), { timeout: 60_000 });
  }
}
