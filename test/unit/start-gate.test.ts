// Work that create leaves to do (sysctl views, domainname) holds that container's start, no other's.
import { describe, expect, it } from 'vitest';
import { StartGate } from '../../actors/start-gate.ts';

describe('StartGate', () => {
  it('holds a start until the work settles, and only that container\'s', async () => {
    const g = new StartGate();
    let done!: () => void;
    g.hold('a', new Promise<void>((r) => (done = r)));
    let started = false;
    const a = g.wait('a').then(() => (started = true));
    await g.wait('b'); // nothing holds b
    await new Promise((r) => setImmediate(r));
    expect(started).toBe(false);
    done();
    await a;
    expect(started).toBe(true);
    expect(g.size).toBe(0);
  });

  it('lets the start go on when the work failed', async () => {
    const g = new StartGate();
    g.hold('a', Promise.reject(new Error('no views')));
    await expect(g.wait('a')).resolves.toBeUndefined();
    expect(g.size).toBe(0);
  });
});
