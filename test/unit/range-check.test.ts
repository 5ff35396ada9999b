import { describe, expect, it } from 'vitest';
import { rangeProblem } from '../../actors/manager/range-check.ts';

const pool = { base: 0x7000_0000, size: 65536, count: 4 };
const r = (hostID: number, size = 65536) => ({ uid: { hostID, size }, gid: { hostID, size } });

describe('a range the manager applies', () => {
  it('is one whole range of the pool that no live container holds', () => {
    expect(rangeProblem(r(pool.base + 65536), pool, [{ hostID: pool.base, size: 65536 }, undefined])).toBeUndefined();
  });
  it('is refused outside the pool, off its grid, of another width, or split between uid and gid', () => {
    expect(rangeProblem(r(0), pool, [])).toMatch(/is not a range of the pool/);
    expect(rangeProblem(r(pool.base + 4 * 65536), pool, [])).toMatch(/is not a range of the pool/);
    expect(rangeProblem(r(pool.base + 1), pool, [])).toMatch(/is not a range of the pool/);
    expect(rangeProblem(r(pool.base, 65535), pool, [])).toMatch(/65535 wide, not 65536/);
    expect(rangeProblem({ uid: { hostID: pool.base, size: 65536 }, gid: { hostID: pool.base + 65536, size: 65536 } }, pool, [])).toMatch(/differ/);
  });
  it('is refused when a live container holds it', () => {
    expect(rangeProblem(r(pool.base), pool, [{ hostID: pool.base, size: 65536 }])).toMatch(/overlaps a live container's range/);
  });
});
