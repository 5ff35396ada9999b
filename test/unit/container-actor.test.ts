import { describe, expect, it } from 'vitest';
import { ContainerActor, type ContainerDeps } from '../../actors/container.actor.ts';

// Every container runs the one shared machine: each must see only its own effects.
function deps(hostID: number, log: string[]): ContainerDeps {
  return {
    requestRange: async (id) => ({ ok: true, owner: id, index: hostID, uid: { hostID, size: 65536 }, gid: { hostID, size: 65536 } }),
    freeRange: async (id) => { log.push(`free ${id}`); },
    mountRootfs: async (id, uid) => ({ path: `/r/${id}/${uid.hostID}`, mounts: [{ path: `/r/${id}`, id: hostID }] }),
    unmountRootfs: async (id, mounts) => { log.push(`unmount ${id} ${mounts?.map((m) => m.id).join(',')}`); return []; },
    removeRunDir: async (id) => { log.push(`remove ${id}`); },
    transition: (state, from) => log.push(`${state}${from ? ` from ${from}` : ''}`),
  };
}

describe('ContainerActor on the shared machine', () => {
  it('runs each container with its own effects, side by side', async () => {
    const la: string[] = [];
    const lb: string[] = [];
    const a = new ContainerActor('a', '/ba', deps(100, la)).start();
    const b = new ContainerActor('b', '/bb', deps(200, lb)).start();
    const [sa, sb] = await Promise.all([a.ready(), b.ready()]);
    expect(sa.context.rootfs).toBe('/r/a/100');
    expect(sb.context.rootfs).toBe('/r/b/200');
    a.send({ type: 'delete' });
    await a.released;
    expect(la).toEqual(['created', 'mapped from created', 'mounted from mapped', 'stopped from mounted', 'unmount a 100', 'free a', 'remove a']);
    expect(lb).toEqual(['created', 'mapped from created', 'mounted from mapped']);
    expect(b.state).toBe('mounted');
  });

  it('takes up a restored container where its record left it', async () => {
    const log: string[] = [];
    const first = new ContainerActor('c', '/bc', deps(300, [])).start();
    await first.ready();
    const c = new ContainerActor('c', '/bc', deps(300, log), { restore: first.record() }).start();
    expect(c.state).toBe('mounted');
    c.send({ type: 'delete' });
    await c.released;
    expect(log).toEqual(['stopped from mounted', 'unmount c 300', 'free c', 'remove c']);
  });

  // An overlay's host view comes after the rootfs, beside runc create.
  function withView(log: string[]) {
    let settle!: { resolve(m: { path: string; id: number }): void; reject(e: Error): void };
    const view = new Promise<{ path: string; id: number }>((resolve, reject) => (settle = { resolve, reject }));
    const d: ContainerDeps = {
      ...deps(400, log),
      mountRootfs: async (id) => ({ path: `/r/${id}`, mounts: [{ path: `/r/${id}`, id: 400 }], view }),
      record: (state, ctx) => log.push(`record ${state} ${ctx.mounts?.map((m) => m.id).join(',')}`),
    };
    return { d, settle };
  }

  it('a host view that comes is in the mounts (and the record) before the container can be created', async () => {
    const log: string[] = [];
    const { d, settle } = withView(log);
    const c = new ContainerActor('v', '/bv', d).start();
    await c.ready();
    c.send({ type: 'runc.created' });
    expect(c.context.runcCreated).toBe(false); // not before the view
    settle.resolve({ path: '/engine/v', id: 401 });
    expect(await c.hostViewMounted()).toBeUndefined();
    expect(log.at(-1)).toBe('record mounted 400,401');
    c.send({ type: 'runc.created' });
    expect(c.context.runcCreated).toBe(true);
    c.send({ type: 'delete' });
    await c.released;
    expect(log.slice(-3)).toEqual(['unmount v 400,401', 'free v', 'remove v']);
  });

  it('a delete while the view is being mounted waits for it and takes it down too', async () => {
    const log: string[] = [];
    const { d, settle } = withView(log);
    const c = new ContainerActor('w', '/bw', d).start();
    await c.ready();
    c.send({ type: 'delete' });
    expect(c.state).toBe('mounted');
    expect(c.isUnmounted).toBe(false);
    settle.resolve({ path: '/engine/w', id: 402 });
    expect(await c.hostViewMounted()).toMatch(/deleted while its host view was being mounted/);
    await c.released;
    expect(log.filter((l) => l.startsWith('unmount'))).toEqual(['unmount w 400,402']);
  });

  it('a failed view fails the create: runc.created is refused, runc.failed releases what is held', async () => {
    const log: string[] = [];
    const { d, settle } = withView(log);
    const c = new ContainerActor('x', '/bx', d).start();
    await c.ready();
    settle.reject(new Error('mount: EIO'));
    expect(await c.hostViewMounted()).toBe('cannot mount the host view of the rootfs: mount: EIO');
    c.send({ type: 'runc.created' });
    expect(c.context.runcCreated).toBe(false);
    c.send({ type: 'runc.failed', reason: 'no view' });
    await c.released;
    expect(c.state).toBe('failed');
    expect(log.filter((l) => l.startsWith('unmount'))).toEqual(['unmount x 400']);
  });
});
