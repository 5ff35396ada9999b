// The manager's containers: one actor per id, plus what the host learns about each one beside its
// machine (the init pid from runc's agent connection, its volumes), and the record a restarted
// manager needs, built from all of it.
import type { ContainerStateName, IdRange } from '../../statecharts/events.ts';
import type { ContainerContext } from '../../statecharts/container.machine.ts';
import type { ContainerActor } from '../container.actor.ts';
import { initPidOf, type StoredRecord } from '../restore.ts';
import { RangeGroups } from './groups.ts';

export interface ContainerView {
  id: string;
  state: ContainerStateName;
  uid?: IdRange;
  gid?: IdRange;
  rootfs?: string;
  bundle: string;
  created: string;
  reason?: string;
  /** The group whose range it shares (its own id when it joined nobody). */
  group?: string;
}

export class ContainerTable {
  readonly actors = new Map<string, ContainerActor>();
  /** Host pid of each container's init (from runc's agent connection, or restored). */
  private readonly initPids = new Map<string, number>();
  /** Each init's start time (clock ticks since boot) when it was registered: a recycled pid is not it. */
  private readonly initStarts = new Map<string, number>();
  /** Volumes per container actor (runtime.ts sets them with protectedPaths; gone with the actor). */
  private readonly volumes = new WeakMap<ContainerActor, string[]>();
  /** Which containers share a user namespace and range (groups.ts). */
  readonly groups = new RangeGroups();

  get(id: string): ContainerActor | undefined {
    return this.actors.get(id);
  }

  has(id: string): boolean {
    return this.actors.has(id);
  }

  ids(): IterableIterator<string> {
    return this.actors.keys();
  }

  all(): IterableIterator<ContainerActor> {
    return this.actors.values();
  }

  add(c: ContainerActor): void {
    this.actors.set(c.id, c);
  }

  /** Forgets a released actor (unless a newer one took its id meanwhile) and its init pid. */
  remove(c: ContainerActor): void {
    if (this.actors.get(c.id) === c) this.actors.delete(c.id);
    this.initPids.delete(c.id);
    this.initStarts.delete(c.id);
  }

  initPid(id: string): number | undefined {
    return this.initPids.get(id);
  }

  setInitPid(id: string, pid: number, start?: number): void {
    this.initPids.set(id, pid);
    if (start === undefined) this.initStarts.delete(id);
    else this.initStarts.set(id, start);
  }

  /**
   * Whether container id's init still runs: its pid is there, with the start time it had when it was
   * registered (when that is known; otherwise any process at that pid counts: erring towards running).
   */
  initRunning(id: string, stat: (pid: number) => string | undefined): boolean {
    const pid = this.initPids.get(id);
    return pid !== undefined && initPidOf({ initPid: pid }, { init_process_start: this.initStarts.get(id) }, stat) !== undefined;
  }

  volumePaths(id: string): string[] | undefined {
    const c = this.actors.get(id);
    return c && this.volumes.get(c);
  }

  setVolumePaths(id: string, paths: string[]): void {
    const c = this.actors.get(id);
    if (c) this.volumes.set(c, paths);
  }

  /** The KV record of a container: its machine state plus what a restarted manager needs. */
  recordOf(c: ContainerActor, state: ContainerStateName, ctx: ContainerContext): StoredRecord {
    return {
      state, context: ctx, runcRoot: c.runcRoot, created: c.created,
      initPid: this.initPids.get(c.id), initStart: this.initStarts.get(c.id), hostView: c.viewTarget, protectedPaths: c.protectedPaths, volumePaths: this.volumes.get(c),
      group: this.groups.groupOf(c.id),
    };
  }

  list(): ContainerView[] {
    return [...this.actors.values()].map((c) => ({
      id: c.id, state: c.state, uid: c.context.uid, gid: c.context.gid, rootfs: c.context.rootfs,
      bundle: c.context.bundle, created: c.created, reason: c.context.reason, group: this.groups.groupOf(c.id),
    }));
  }
}
