// A delete's release runs beside runc only on evidence that no process of the container is left: runc's
// init is gone (or its pid is another process now) and the pid namespace was the container's own.
import { describe, expect, it } from 'vitest';
import { noProcessLeft, type RuncState as RuncStoppedState } from '../../actors/runc/state.ts';

const stat = (start: number) => `4242 (sh) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 ${start} 1000 10 0`;
const own = { namespaces: [{ type: 'NEWNS', path: '' }, { type: 'NEWPID', path: '' }] };
const state = (o: Partial<RuncStoppedState> = {}): RuncStoppedState => ({ init_process_pid: 4242, init_process_start: 777, config: own, ...o });

describe('noProcessLeft', () => {
  it('is true when the init is gone or its pid is another process, with its own pid namespace', () => {
    expect(noProcessLeft(state(), () => undefined)).toBe(true);
    expect(noProcessLeft(state(), () => stat(999))).toBe(true);
  });

  it('is false while the init runs', () => {
    expect(noProcessLeft(state(), () => stat(777))).toBe(false);
  });

  it('is false for a shared or host pid namespace: other processes may outlive the init', () => {
    expect(noProcessLeft(state({ config: { namespaces: [{ type: 'NEWPID', path: '/proc/1/ns/pid' }] } }), () => undefined)).toBe(false);
    expect(noProcessLeft(state({ config: { namespaces: [{ type: 'NEWNS', path: '' }] } }), () => undefined)).toBe(false);
  });

  it('is false when runc does not say which process the init was', () => {
    expect(noProcessLeft(undefined, () => undefined)).toBe(false);
    expect(noProcessLeft(state({ init_process_start: undefined }), () => undefined)).toBe(false);
    expect(noProcessLeft(state({ init_process_pid: undefined }), () => undefined)).toBe(false);
    expect(noProcessLeft(state({ config: undefined }), () => undefined)).toBe(false);
  });
});
