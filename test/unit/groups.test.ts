// Group bookkeeping (manager/groups.ts), the namespace-owner match (manager/group-ns.ts), the
// shared-namespaces check and the group-user-namespace rewrite step: pure, no root needed.
import { describe, expect, it } from 'vitest';
import { namespaceOwner, nsEntry, type JoinCandidate } from '../../actors/manager/group-ns.ts';
import { RangeGroups, type GroupRange } from '../../actors/manager/groups.ts';
import { engineLayout } from '../../actors/policy/engine-layout.ts';
import type { OciSpec } from '../../actors/runc/spec.ts';
import { CHECK_STEPS, groupJoin, type CheckContext, type NamespaceOwner } from '../../actors/spec/checks.ts';
import { joinGroupUserns, REWRITE_STEPS } from '../../actors/spec/rewrite.ts';
import { runSteps, SpecStepError } from '../../actors/spec/steps.ts';
import { validateEvent } from '../../bus/schemas/v1.ts';

const R: GroupRange = { index: 0, uid: { hostID: 1879048192, size: 65536 }, gid: { hostID: 1879048192, size: 65536 } };

describe('RangeGroups', () => {
  it('holds one range per group and frees it only with the last member, whatever the order', () => {
    for (const order of [['a', 'b', 'c'], ['c', 'b', 'a'], ['b', 'a', 'c']]) {
      const g = new RangeGroups();
      g.join(g.keyFor('a'), 'a');
      expect(g.range('a')).toBeUndefined();
      g.setRange('a', R);
      g.join('a', 'b');
      g.join('a', 'c');
      expect(g.count('a')).toBe(3);
      expect(g.members('a')).toEqual(['a', 'b', 'c']);
      expect(['a', 'b', 'c'].map((m) => g.groupOf(m))).toEqual(['a', 'a', 'a']);
      const left = order.map((m) => g.leave(m));
      expect(left.map((l) => l?.last)).toEqual([false, false, true]);
      expect(left[2]).toEqual({ key: 'a', last: true, range: R });
      expect(g.live('a')).toBe(false);
      expect(g.count('a')).toBe(0);
    }
  });

  it('leave is idempotent and says when the container was in no group', () => {
    const g = new RangeGroups();
    g.join('a', 'a', R);
    expect(g.leave('a')?.last).toBe(true);
    expect(g.leave('a')).toBeUndefined();
    expect(g.leave('nobody')).toBeUndefined();
  });

  it("gives a reused id a key of its own while the old group still runs (never the old group's range)", () => {
    const g = new RangeGroups();
    g.join('a', 'a', R);
    g.join('a', 'b');
    g.leave('a'); // the first member is gone, b keeps the group (and its key) alive
    expect(g.keyFor('a')).toBe('a~2');
    g.join('a~2', 'a');
    expect(g.range('a~2')).toBeUndefined();
    expect(g.keyFor('a')).toBe('a~3');
    expect(g.keyFor('z')).toBe('z');
  });

  it('a container is in one group at most', () => {
    const g = new RangeGroups();
    g.join('a', 'a', R);
    g.join('x', 'x', R);
    expect(() => g.join('x', 'a')).toThrow('already in group a');
    g.join('a', 'a'); // joining its own group again changes nothing
    expect(g.count('a')).toBe(1);
  });

  it('a restored member brings its range back (the first one recorded wins)', () => {
    const g = new RangeGroups();
    g.join('a', 'b', R);
    g.join('a', 'c', { ...R, index: 5 });
    expect(g.range('a')).toEqual(R);
  });
});

describe('namespaceOwner', () => {
  const inodes: Record<string, number> = {
    '/proc/10/ns/net': 100, '/proc/10/ns/ipc': 101, '/proc/20/ns/net': 200, '/proc/20/ns/pid': 202,
    '/var/run/netns/x': 100, '/proc/30/ns/net': 300,
  };
  const stat = (p: string) => {
    if (!(p in inodes)) throw Object.assign(new Error('gone'), { code: 'ENOENT' });
    return { dev: 4, ino: inodes[p] };
  };
  const cands: JoinCandidate[] = [{ id: 'gone', group: 'g0', pid: 99 }, { id: 'a', group: 'ga', pid: 10 }, { id: 'b', group: 'gb', pid: 20 }];

  it('matches by device and inode, not by the path text', () => {
    expect(namespaceOwner('network', '/var/run/netns/x', cands, stat)?.id).toBe('a'); // a bind-mounted nsfs file of a's netns
    expect(namespaceOwner('network', '/proc/20/ns/net', cands, stat)?.id).toBe('b');
    expect(namespaceOwner('pid', '/proc/20/ns/pid', cands, stat)?.id).toBe('b');
    expect(namespaceOwner('network', '/proc/30/ns/net', cands, stat)).toBeUndefined(); // nobody eci knows
    expect(nsEntry('mount')).toBe('mnt');
  });

  it('refuses a path it cannot check (fail closed)', () => {
    expect(() => namespaceOwner('ipc', '/proc/77/ns/ipc', cands, stat)).toThrow('cannot check the ipc namespace /proc/77/ns/ipc (ENOENT): refusing to join it');
  });
});

describe('shared-namespaces and group-user-namespace', () => {
  const spec = (ns: { type: string; path?: string }[]): OciSpec => ({ root: { path: 'rootfs' }, linux: { namespaces: ns } });
  const owners: Record<string, NamespaceOwner> = {
    '/proc/10/ns/net': { id: 'a', group: 'ga', pid: 10 },
    '/proc/11/ns/ipc': { id: 'a2', group: 'ga', pid: 11 },
    '/proc/20/ns/pid': { id: 'b', group: 'gb', pid: 20 },
  };
  const owner = (_t: string, p: string) => owners[p];
  const base = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];

  it('names the group and its user namespace, or nothing for a spec that joins none', () => {
    expect(groupJoin(spec([...base, { type: 'network' }]), owner)).toBeUndefined();
    expect(groupJoin(spec([...base.slice(0, 1), { type: 'ipc', path: '/proc/11/ns/ipc' }, { type: 'network', path: '/proc/10/ns/net' }, { type: 'user', path: '/proc/1/ns/user' }]), owner))
      .toEqual({ group: 'ga', containers: ['a2', 'a'], userns: '/proc/11/ns/user' });
  });

  it('refuses a namespace no eci container owns, and owners of two groups, through the check step', () => {
    const ctx = (): CheckContext => ({ id: 'n', bundle: '/b', isHostNamespace: () => false, resolve: () => undefined, decisions: [], namespaceOwner: owner });
    const run = (s: OciSpec) => runSteps(CHECK_STEPS, s, ctx());
    let err: unknown;
    try { run(spec([...base, { type: 'network', path: '/proc/30/ns/net' }])); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(SpecStepError);
    expect((err as SpecStepError).code).toBe('EJOINNS');
    expect((err as Error).message).toBe('eci containers can only share namespaces with other eci containers: the network namespace /proc/30/ns/net belongs to no eci container (a container eci does not isolate, e.g. a runc container, lives in the host\'s user namespace) (step shared-namespaces)');
    expect(() => run(spec([{ type: 'pid', path: '/proc/20/ns/pid' }, ...base.slice(1), { type: 'network', path: '/proc/10/ns/net' }])))
      .toThrow("eci containers can't join namespaces of containers in different groups (gb, ga): each group has its own user namespace (step shared-namespaces)");
    const c = ctx();
    runSteps(CHECK_STEPS, spec([...base, { type: 'network', path: '/proc/10/ns/net' }]), c);
    expect(c.joins).toEqual({ group: 'ga', containers: ['a'], userns: '/proc/10/ns/user' });
    // eci turned off: namespaceOwner is not given and nothing is judged.
    const off = { ...ctx(), namespaceOwner: undefined };
    runSteps(CHECK_STEPS, spec([...base, { type: 'network', path: '/proc/30/ns/net' }]), off);
    expect(off.joins).toBeUndefined();
  });

  it('the rewrite joins the group\'s user namespace and keeps the mappings (runc wants them)', () => {
    const s = spec([...base, { type: 'network', path: '/proc/10/ns/net' }, { type: 'user' }]);
    expect(joinGroupUserns(s, undefined)).toBe(s);
    const out = joinGroupUserns({ ...s, linux: { ...s.linux, uidMappings: [{ containerID: 0, hostID: 7, size: 1 }] } }, '/proc/10/ns/user');
    expect(out.linux!.namespaces).toContainEqual({ type: 'user', path: '/proc/10/ns/user' });
    expect(out.linux!.namespaces!.filter((n) => n.type === 'user')).toHaveLength(1);
    expect(out.linux!.uidMappings).toEqual([{ containerID: 0, hostID: 7, size: 1 }]);
    const idx = REWRITE_STEPS.map((x) => x.name);
    expect(idx.indexOf('group-user-namespace')).toBe(idx.indexOf('user-namespace') + 1);
  });

  it("the joined containers' engine files are the member's own (Docker and Podman), plain ids only", () => {
    const dockerBundle = (id: string) => `/run/d/containerd/daemon/io.containerd.runtime.v2.task/moby/${id}`;
    const s: OciSpec = { root: { path: '/srv/d/overlay2/01/merged' }, linux: {} };
    expect(engineLayout(s, { id: 'b', bundle: dockerBundle('b'), joined: ['a', '../x'] }).ownDirs).toEqual([dockerBundle('b'), '/srv/d/containers/b', '/srv/d/containers/a']);
    const p: OciSpec = { root: { path: '/g/overlay/01/merged' }, linux: {} };
    expect(engineLayout(p, { id: 'b', bundle: '/g/overlay-containers/b/userdata', pidFile: '/r/overlay-containers/b/userdata/pidfile', joined: ['a'] }).ownDirs)
      .toEqual(['/g/overlay-containers/b/userdata', '/r/overlay-containers/b/userdata', '/r/overlay-containers/a/userdata']);
  });
});

describe('container events name the group', () => {
  it('accepts a string group and refuses anything else', () => {
    const ev = (group: unknown) => ({ v: 1, type: 'container.running', id: '01ARZ3NDEKTSV4RRFFQ69G5FAV', ts: new Date().toISOString(), data: { container: 'b', state: 'running', group } });
    expect((validateEvent(ev('a')).data as { group?: string }).group).toBe('a');
    expect(() => validateEvent(ev(7))).toThrow('event.data.group: expected a string');
  });
});
