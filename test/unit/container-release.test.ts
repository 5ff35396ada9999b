// A deleted container's release, in order: its mounts down (what the engine's `delete` answer waits
// for: `unmounted`), then its range, then its run dir (kept for a mount that would not go); `released`
// only once all of it is done.
import { describe, expect, it } from 'vitest';
import { ContainerActor } from '../../actors/container.actor.ts';
import type { MountRef } from '../../statecharts/events.ts';

const R = { hostID: 100000, size: 65536 };
const ROOTFS = '/run/eci/containers/c1/rootfs';
const flush = () => new Promise((r) => setImmediate(r));

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('container release', () => {
  it('answers at unmounted; frees the range, then removes the run dir, then released', async () => {
    const steps: string[] = [];
    const unmount = deferred<MountRef[]>();
    const remove = deferred<void>();
    const stuck: MountRef[] = [{ path: `${ROOTFS}/../binds/0`, id: 78 }];
    const a = new ContainerActor('c1', '/bundle', {
      requestRange: async () => ({ ok: true, owner: 'c1', index: 3, uid: R, gid: R }),
      freeRange: async () => { steps.push('free'); },
      mountRootfs: async () => ({ path: ROOTFS, mounts: [{ path: ROOTFS, id: 77 }] }),
      unmountRootfs: (_id, m) => { steps.push(`unmount ${m?.length}`); return unmount.promise; },
      removeRunDir: (_id, left) => { steps.push(`remove, left ${left.length}`); return remove.promise; },
      transition: () => {},
    }).start();
    await flush();
    expect(a.state).toBe('mounted');
    let released = false;
    void a.released.then(() => (released = true));
    a.send({ type: 'delete' });
    await flush();
    expect(a.isUnmounted).toBe(false);
    expect(steps).toEqual(['unmount 1']);

    unmount.resolve(stuck);
    await a.unmounted;
    expect(a.isUnmounted).toBe(true);
    await flush();
    expect(steps).toEqual(['unmount 1', 'free', 'remove, left 1']);
    expect(released).toBe(false); // the run dir is still being removed

    remove.resolve();
    await a.released;
    expect(Object.keys(a.releaseTimes)).toEqual(['unmounted', 'freed', 'removed']);
  });

  it('settles unmounted and released when the unmount fails, keeping the run dir', async () => {
    const a = new ContainerActor('c2', '/bundle', {
      requestRange: async () => ({ ok: true, owner: 'c2', index: 4, uid: R, gid: R }),
      freeRange: async () => {},
      mountRootfs: async () => ({ path: ROOTFS, mounts: [{ path: ROOTFS, id: 77 }] }),
      unmountRootfs: async () => { throw new Error('EPERM'); },
      removeRunDir: async () => { throw new Error('must not remove a dir whose unmount failed'); },
      transition: () => {},
    }).start();
    await flush();
    a.send({ type: 'delete' });
    await a.unmounted;
    await a.released;
    expect(a.state).toBe('stopped');
    expect(a.releaseError?.message).toBe('EPERM');
  });
});
