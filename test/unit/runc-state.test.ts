import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { initPidInHead, runcInitPid } from '../../actors/runc/state.ts';

// The shape runc 1.1 writes: State's fields in order, then the whole config.
const state = (pid: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ id: 'c1', init_process_pid: pid, init_process_start: 123, created: '2026-01-01T00:00:00Z', config: { labels: ['a'], ...extra } });

describe('initPidInHead', () => {
  it("reads runc's top-level init_process_pid", () => {
    expect(initPidInHead(state(4242))).toBe(4242);
    expect(initPidInHead(state(4242).slice(0, 60))).toBe(4242);
  });
  it('is not fooled by the key inside a string (quotes in strings are escaped) and takes the first key', () => {
    const text = JSON.stringify({ id: 'x', note: '"init_process_pid":1,', init_process_pid: 77 });
    expect(initPidInHead(text)).toBe(77);
  });
  it('says nothing when the head is cut inside the number, or the pid is 0', () => {
    expect(initPidInHead('{"id":"c1","init_process_pid":42')).toBeUndefined();
    expect(initPidInHead(state(0))).toBeUndefined();
    expect(initPidInHead('{"id":"c1"}')).toBeUndefined();
  });
});

describe('runcInitPid', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const write = (text: string) => {
    dir = mkdtempSync('/tmp/eci-runc-state-');
    mkdirSync(join(dir, 'c1'));
    writeFileSync(join(dir, 'c1', 'state.json'), text);
  };
  it('reads the pid from the head of state.json', () => {
    write(state(31337, { seccomp: 'x'.repeat(100_000) }));
    expect(runcInitPid(dir, 'c1')).toBe(31337);
  });
  it('parses the whole file when the pid is not in its head', () => {
    write(JSON.stringify({ id: 'c1', pad: 'y'.repeat(10_000), init_process_pid: 99 }));
    expect(runcInitPid(dir, 'c1')).toBe(99);
  });
  it('is undefined without a state or a pid', () => {
    write(JSON.stringify({ id: 'c1' }));
    expect(runcInitPid(dir, 'c1')).toBeUndefined();
    expect(runcInitPid(dir, 'nope')).toBeUndefined();
  });
});
