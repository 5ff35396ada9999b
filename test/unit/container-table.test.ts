// The table's view of a container's init: registered with its start time, so that a recycled pid
// (another process at the same pid later) is not taken for it.
import { describe, expect, it } from 'vitest';
import { ContainerTable } from '../../actors/manager/table.ts';

/** A /proc/<pid>/stat line whose field 22 (starttime) is `start`; the comm holds a space and parens. */
const statLine = (pid: number, start: number) => `${pid} (sle ep) S 1 ${pid} ${pid} 0 -1 4194560 ${Array(12).fill(0).join(' ')} ${start} 100 200`;

describe('ContainerTable.initRunning', () => {
  it('is true while the registered pid runs with its start time, false once it is gone or another process has the pid', () => {
    const t = new ContainerTable();
    const procs = new Map<number, string>([[4242, statLine(4242, 777)]]);
    const stat = (pid: number) => procs.get(pid);
    expect(t.initRunning('c1', stat)).toBe(false); // not registered
    t.setInitPid('c1', 4242, 777);
    expect(t.initRunning('c1', stat)).toBe(true);
    procs.set(4242, statLine(4242, 999)); // the pid recycled
    expect(t.initRunning('c1', stat)).toBe(false);
    procs.delete(4242);
    expect(t.initRunning('c1', stat)).toBe(false);
  });

  it('counts any process at the pid when the start time is unknown (errs towards running)', () => {
    const t = new ContainerTable();
    t.setInitPid('c2', 5151);
    expect(t.initRunning('c2', (pid) => (pid === 5151 ? statLine(5151, 1) : undefined))).toBe(true);
    expect(t.initRunning('c2', () => undefined)).toBe(false);
  });
});
