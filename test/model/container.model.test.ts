// Model-based test: xstate/graph walks every simple path of the container lifecycle machine and
// replays it against the real ContainerActor with fake effects (no runc, no bus, no mounts).
// After each path the actor must be in the model's state, and a finished container must have
// released exactly what it held.
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { createTestModel } from 'xstate/graph';
import { containerConfig, containerMachine, containerSetup, RANGE_TIMEOUT_MS, ROOTFS_TIMEOUT_MS } from '../../statecharts/container.machine.ts';
import type { ContainerEvent } from '../../statecharts/events.ts';
import { ContainerActor } from '../../actors/container.actor.ts';
import type { AllocationResult } from '../../statecharts/events.ts';

const R = { hostID: 100000, size: 65536 };
const ROOTFS = '/run/eci/containers/c1/rootfs';
const ENGINE = '/var/lib/docker/overlay2/c1/merged';
const AFTER_RANGE = 'xstate.after.rangeTimeout.container.created';
const AFTER_ROOTFS = 'xstate.after.rootfsTimeout.container.mapped';

const events = [
  { type: 'range.allocated', index: 0, uid: R, gid: R },
  { type: 'range.failed', reason: 'exhausted' },
  { type: 'rootfs.mounted', path: ROOTFS, mounts: [{ path: ROOTFS, id: 77 }] },
  // An overlay: its host view comes after, beside runc create.
  { type: 'rootfs.mounted', path: ROOTFS, mounts: [{ path: ROOTFS, id: 77 }], viewPending: true },
  { type: 'rootfs.failed', reason: 'EINVAL' },
  { type: 'rootfs.viewed', mount: { path: ENGINE, id: 78 } },
  { type: 'rootfs.viewFailed', reason: 'cannot mount the host view of the rootfs: EIO' },
  { type: 'runc.created' },
  { type: 'runc.failed', reason: 'runc create exited with status 1' },
  { type: 'start' },
  { type: 'delete' },
  { type: AFTER_RANGE },
  { type: AFTER_ROOTFS },
] as ContainerEvent[];

const flush = () => new Promise((r) => setImmediate(r));

/** The system under test: a ContainerActor whose effects are promises the test settles. */
function harness() {
  const clock = new SimulatedClock();
  const calls = { unmount: [] as unknown[], free: 0, published: [] as string[] };
  let range: { resolve(r: AllocationResult): void } | undefined;
  let mount: { resolve(p: { path: string; mounts: { path: string; id: number }[]; view?: Promise<{ path: string; id: number }> }): void; reject(e: Error): void } | undefined;
  let view: { resolve(m: { path: string; id: number }): void; reject(e: Error): void } | undefined;
  const actor = new ContainerActor('c1', '/bundle', {
    requestRange: () => new Promise((resolve) => (range = { resolve })),
    freeRange: async () => { calls.free++; },
    mountRootfs: () => new Promise((resolve, reject) => (mount = { resolve, reject })),
    unmountRootfs: async (_id, m) => { calls.unmount.push(m); return []; },
    removeRunDir: async () => {},
    transition: (s) => calls.published.push(s),
  }, { clock }).start();
  const exec: Record<string, (e: ContainerEvent) => Promise<void>> = {
    'range.allocated': async () => { range!.resolve({ ok: true, owner: 'c1', index: 0, uid: R, gid: R }); await flush(); },
    'range.failed': async () => { range!.resolve({ ok: false, owner: 'c1', code: 'EXHAUSTED', reason: 'exhausted' }); await flush(); },
    'rootfs.mounted': async (e) => {
      const pending = e.type === 'rootfs.mounted' && e.viewPending ? new Promise<{ path: string; id: number }>((resolve, reject) => (view = { resolve, reject })) : undefined;
      mount!.resolve({ path: ROOTFS, mounts: [{ path: ROOTFS, id: 77 }], view: pending });
      await flush();
    },
    'rootfs.viewed': async () => { view!.resolve({ path: ENGINE, id: 78 }); await flush(); },
    'rootfs.viewFailed': async () => { view!.reject(new Error('EIO')); await flush(); },
    'rootfs.failed': async () => { mount!.reject(new Error('EINVAL')); await flush(); },
    [AFTER_RANGE]: async () => { clock.increment(RANGE_TIMEOUT_MS); await flush(); },
    [AFTER_ROOTFS]: async () => { clock.increment(ROOTFS_TIMEOUT_MS); await flush(); },
  };
  return { actor, calls, exec };
}

// xstate/graph does not walk `after` delays, so the model is the same config with each delayed
// transition turned into an ordinary transition on the event the actor's clock would send.
function modelMachine() {
  const states: Record<string, unknown> = {};
  for (const [name, node] of Object.entries(containerConfig.states)) {
    const { after, ...rest } = node as { after?: Record<string, unknown>; on?: Record<string, unknown> };
    const on = { ...(rest.on ?? {}) };
    for (const [delay, t] of Object.entries(after ?? {})) on[`xstate.after.${delay}.container.${name}`] = t;
    states[name] = { ...rest, on };
  }
  // deno-lint-ignore no-explicit-any
  return containerSetup.createMachine({ ...containerConfig, states } as any);
}

describe('container lifecycle model', () => {
  const model = createTestModel(modelMachine());
  const paths = model.getSimplePaths({
    events,
    // Only events the machine acts on; a state is its value plus context (not the event that led there).
    filterEvents: (snap, e) => snap.can(e),
    serializeState: (snap) => JSON.stringify({ v: snap.value, c: snap.context }),
  });

  it('reaches every state, both finals included', () => {
    const reached = new Set(paths.flatMap((p) => [String(p.state.value), ...p.steps.map((st) => String(st.state.value))]));
    expect([...reached].sort()).toEqual(['created', 'failed', 'mapped', 'mounted', 'running', 'stopped']);
  });

  it('covers every transition the machine defines', () => {
    const seen = new Set(paths.flatMap((p) => p.steps.map((s, i) => i > 0 ? `${String(p.steps[i - 1].state.value)}:${s.event.type}` : '')).filter(Boolean));
    const defined: string[] = [];
    for (const [name, node] of Object.entries(containerMachine.states)) {
      for (const t of node.transitions.keys()) defined.push(`${name}:${t}`);
    }
    // `start` in mounted before runc.created is a guarded no-op; every other defined edge is walked.
    for (const d of defined) expect(seen, d).toContain(d);
  });

  paths.forEach((path, i) => {
    const route = path.steps.map((st) => st.event.type.replace(/^xstate\.after\.(\w+)\..*/, 'after $1')).join(' > ');
    it(`path ${i + 1}: ${route} => ${String(path.state.value)}`, async () => {
      const h = harness();
      await path.test({
        events: Object.fromEntries(events.map((e) => [e.type, async ({ event }: { event: ContainerEvent }) => {
          const f = h.exec[e.type];
          if (f) await f(event);
          else { h.actor.send(event); await flush(); }
        }])),
        states: {
          '*': async (model) => {
            expect(h.actor.state).toBe(model.value);
            if (model.status === 'done') {
              await h.actor.released;
              // Released exactly what it held: the range iff one was allocated, the rootfs path it had.
              expect(h.calls.free).toBe(model.context.index === undefined ? 0 : 1);
              expect(h.calls.unmount).toEqual([model.context.mounts]);
              expect(h.calls.published.at(-1)).toBe(model.value);
            }
          },
        },
      });
    });
  });
});
