// The audit trail's per-container share: identical decisions and decisions in all per second, the
// rest counted into one summary per kind when the window ends.
import { describe, expect, it } from 'vitest';
import { AuditCoalescer, type Decision } from '../../actors/audit-coalescer.ts';

const d = (o: Partial<Decision> = {}): Decision => ({
  container: 'c1', syscall: 'mount', verdict: 'refused', errno: 'EPERM', reason: 'rate limit', strings: { target: '/mnt' }, ...o,
});
const T0 = Date.parse('2026-01-01T00:00:00Z');

describe('audit coalescer', () => {
  it('keeps the first identical decisions of a second, counts the rest into one summary', () => {
    const c = new AuditCoalescer(() => ({ identicalPerSecond: 3, decisionsPerSecond: 100 }));
    const kept = Array.from({ length: 1000 }, (_, i) => c.offer(d(), T0 + i / 2));
    expect(kept.filter(Boolean)).toHaveLength(3);
    expect(kept.slice(0, 3)).toEqual([true, true, true]);
    expect(c.due(T0 + 999)).toEqual([]); // the window is still open
    expect(c.nextDue()).toBe(T0 + 1000);
    expect(c.due(T0 + 1000)).toEqual([{
      container: 'c1', syscall: 'mount', verdict: 'refused', errno: 'EPERM', reason: 'rate limit', count: 997,
      from: new Date(T0 + 1.5).toISOString(), to: new Date(T0 + 499.5).toISOString(),
    }]);
    expect(c.due(T0 + 5000)).toEqual([]);
    expect(c.nextDue()).toBeUndefined();
  });

  it('different decisions pass up to the per-second total; each kind gets its own summary', () => {
    const c = new AuditCoalescer(() => ({ identicalPerSecond: 2, decisionsPerSecond: 10 }));
    let kept = 0;
    for (let i = 0; i < 50; i++) kept += Number(c.offer(d({ strings: { target: `/mnt/${i}` } }), T0 + i));
    for (let i = 0; i < 5; i++) kept += Number(c.offer(d({ syscall: 'umount2', verdict: 'performed', errno: undefined, strings: { target: `/u/${i}` } }), T0 + 100 + i));
    expect(kept).toBe(10);
    const s = c.due(T0 + 1000);
    expect(s.map((x) => [x.syscall, x.verdict, x.errno, x.count])).toEqual([['mount', 'refused', 'EPERM', 40], ['umount2', 'performed', undefined, 5]]);
    expect(s[1]).not.toHaveProperty('errno');
  });

  it('containers have shares of their own, and a new second starts a new share', () => {
    const c = new AuditCoalescer(() => ({ identicalPerSecond: 1, decisionsPerSecond: 1 }));
    expect([c.offer(d(), T0), c.offer(d(), T0 + 1), c.offer(d({ container: 'c2' }), T0 + 2)]).toEqual([true, false, true]);
    // The next second of c1: the old window ends (its count is due) and the share is new.
    expect(c.offer(d(), T0 + 1000)).toBe(true);
    expect(c.due(T0 + 1000).map((x) => [x.container, x.count])).toEqual([['c1', 1]]);
  });

  it('the output per container and second is bounded whatever the input rate', () => {
    const c = new AuditCoalescer(() => ({ identicalPerSecond: 5, decisionsPerSecond: 20 }));
    let out = 0;
    for (let i = 0; i < 30_000; i++) {
      out += Number(c.offer(d({ syscall: ['mount', 'umount2', 'fsopen'][i % 3], strings: { target: `/t/${i}` } }), T0 + i / 100));
    }
    out += c.due(Infinity).length;
    // 300 seconds: at most 20 kept + 3 summaries each.
    expect(out).toBeLessThanOrEqual(300 * 23);
  });

  it('a forgotten container has its counts due at once', () => {
    const c = new AuditCoalescer(() => ({ identicalPerSecond: 1, decisionsPerSecond: 1 }));
    c.offer(d(), T0);
    c.offer(d(), T0);
    c.forget('c1');
    expect(c.nextDue()).toBe(0);
    expect(c.due(T0).map((x) => x.count)).toEqual([1]);
  });
});
