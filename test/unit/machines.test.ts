// Steps the pure machines with transition() and checks the effects they ask for, without running any.
import { describe, expect, it } from 'vitest';
import { initialTransition, transition } from 'xstate';
import { containerMachine } from '../../statecharts/container.machine.ts';
import { allocatorMachine, rangeOf } from '../../statecharts/allocator.machine.ts';

const types = (actions: { type: string }[]) => actions.map((a) => a.type).filter((t) => !t.startsWith('xstate.'));
const params = (actions: { type: string }[], type: string, nth = 0) =>
  (actions.filter((a) => a.type === type)[nth] as unknown as { params: unknown }).params;
const r = (hostID: number) => ({ hostID, size: 65536 });

describe('container machine', () => {
  it('asks for a range on entry, then a rootfs, and publishes each state', () => {
    let [s, a] = initialTransition(containerMachine, { id: 'c1', bundle: '/b' });
    expect(s.value).toBe('created');
    expect(types(a)).toEqual(['publish', 'allocateRange']);
    [s, a] = transition(containerMachine, s, { type: 'range.allocated', index: 0, uid: r(100000), gid: r(100000) });
    expect(s.value).toBe('mapped');
    expect(types(a)).toEqual(['publish', 'mountRootfs']);
    expect(params(a, 'mountRootfs')).toEqual({ id: 'c1', bundle: '/b', uid: r(100000), gid: r(100000) });
    [s, a] = transition(containerMachine, s, { type: 'rootfs.mounted', path: '/run/eci/containers/c1/rootfs', mounts: [{ path: '/run/eci/containers/c1/rootfs', id: 5 }] });
    expect(s.value).toBe('mounted');
    [s] = transition(containerMachine, s, { type: 'start' });
    expect(s.value).toBe('mounted'); // not before runc created it
    [s] = transition(containerMachine, s, { type: 'runc.created' });
    [s, a] = transition(containerMachine, s, { type: 'start' });
    expect(s.value).toBe('running');
    [s, a] = transition(containerMachine, s, { type: 'delete' });
    expect(s.value).toBe('stopped');
    expect(s.status).toBe('done');
    expect(types(a)).toEqual(['publish', 'releaseResources']);
    expect(params(a, 'releaseResources')).toEqual({ id: 'c1', mounts: [{ path: '/run/eci/containers/c1/rootfs', id: 5 }], index: 0 });
  });
  it('fails with the reason and releases what it holds', () => {
    let [s] = initialTransition(containerMachine, { id: 'c1', bundle: '/b' });
    [s] = transition(containerMachine, s, { type: 'range.allocated', index: 3, uid: r(296608), gid: r(296608) });
    const [f, a] = transition(containerMachine, s, { type: 'rootfs.failed', reason: 'EINVAL' });
    expect(f.value).toBe('failed');
    expect(f.context.reason).toBe('EINVAL');
    expect(params(a, 'releaseResources')).toEqual({ id: 'c1', mounts: undefined, index: 3 });
  });
});

describe('allocator machine', () => {
  const cfg = { base: 100000, size: 65536, count: 2 };
  it('hands out the lowest free index, persisting several at once', () => {
    let [s] = initialTransition(allocatorMachine, cfg);
    [s] = transition(allocatorMachine, s, { type: 'restore', held: {} });
    let a;
    [s, a] = transition(allocatorMachine, s, { type: 'allocate', owner: 'a' });
    expect(s.value).toBe('ready');
    expect(types(a)).toEqual(['persistRange']);
    expect(params(a, 'persistRange')).toMatchObject({ owner: 'a', index: 0 });
    [s, a] = transition(allocatorMachine, s, { type: 'allocate', owner: 'b' });
    expect(types(a)).toEqual(['persistRange']); // not behind a's write: another index
    expect(params(a, 'persistRange')).toMatchObject({ owner: 'b', index: 1 });
    expect(s.context.pending).toEqual({ 0: 'a', 1: 'b' });
    [s, a] = transition(allocatorMachine, s, { type: 'allocate', owner: 'c' });
    expect(types(a)).toEqual([]); // every index not held has a write in flight: c waits
    expect(s.context.queue).toEqual(['c']);
    [s, a] = transition(allocatorMachine, s, { type: 'persisted', owner: 'b', index: 1 });
    expect(types(a)).toEqual(['respond']);
    expect(params(a, 'respond')).toEqual({ ok: true, owner: 'b', index: 1, uid: rangeOf(cfg, 1), gid: rangeOf(cfg, 1) });
    expect(rangeOf(cfg, 1)).toEqual({ hostID: 165536, size: 65536 });
    [s, a] = transition(allocatorMachine, s, { type: 'persisted', owner: 'a', index: 0 });
    expect(types(a)).toEqual(['respond', 'respond']); // a's range, then c: exhausted, nothing left in flight
    expect(params(a, 'respond', 0)).toEqual({ ok: true, owner: 'a', index: 0, uid: rangeOf(cfg, 0), gid: rangeOf(cfg, 0) });
    expect(params(a, 'respond', 1)).toMatchObject({ ok: false, owner: 'c', code: 'EXHAUSTED' });
    [s, a] = transition(allocatorMachine, s, { type: 'allocate', owner: 'c' });
    expect(params(a, 'respond')).toMatchObject({ ok: false, code: 'EXHAUSTED' });
    [s, a] = transition(allocatorMachine, s, { type: 'free', owner: 'a' });
    expect(types(a)).toEqual(['releaseRange']);
    expect(s.context.held).toEqual({ 1: 'b' });
  });
  it('a waiting request takes the index of a write that failed', () => {
    let [s] = initialTransition(allocatorMachine, cfg);
    [s] = transition(allocatorMachine, s, { type: 'restore', held: { 1: 'x' } });
    [s] = transition(allocatorMachine, s, { type: 'allocate', owner: 'a' });
    let a;
    [s, a] = transition(allocatorMachine, s, { type: 'allocate', owner: 'b' });
    expect(types(a)).toEqual([]);
    [s, a] = transition(allocatorMachine, s, { type: 'persist.failed', owner: 'a', index: 0, reason: 'disk full' });
    expect(types(a)).toEqual(['respond', 'persistRange']);
    expect(params(a, 'respond')).toMatchObject({ ok: false, owner: 'a', code: 'EPERSIST' });
    expect(params(a, 'persistRange')).toMatchObject({ owner: 'b', index: 0 });
    // A second request of a pending owner is not a second write.
    [s, a] = transition(allocatorMachine, s, { type: 'allocate', owner: 'b' });
    expect(types(a)).toEqual([]);
    expect(s.context).toMatchObject({ pending: { 0: 'b' }, queue: [] });
  });
  it('skips an index another holder has in the store', () => {
    let [s] = initialTransition(allocatorMachine, cfg);
    [s] = transition(allocatorMachine, s, { type: 'restore', held: {} });
    [s] = transition(allocatorMachine, s, { type: 'allocate', owner: 'a' });
    const [n, a] = transition(allocatorMachine, s, { type: 'persist.conflict', owner: 'a', index: 0, holder: 'z' });
    expect(n.context.held).toEqual({ 0: 'z' });
    expect(n.context.pending).toEqual({ 1: 'a' });
    expect(types(a)).toEqual(['persistRange']);
  });
  it('answers an owner that already holds a range with the same range', () => {
    let [s] = initialTransition(allocatorMachine, cfg);
    [s] = transition(allocatorMachine, s, { type: 'restore', held: { 1: 'a' } });
    const [, a] = transition(allocatorMachine, s, { type: 'allocate', owner: 'a' });
    expect(params(a, 'respond')).toMatchObject({ ok: true, index: 1 });
  });
});
