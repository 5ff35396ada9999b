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
});
