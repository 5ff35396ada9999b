// assertStateSpace with a fake statfs: refuses below 1 MiB with one line, passes above, and says so
// when the dir cannot be checked.
import { describe, expect, it } from 'vitest';
import { assertStateSpace, MIN_FREE_BYTES } from '../../actors/state-space.ts';

const fake = (bytes: number) => () => ({ bavail: BigInt(Math.floor(bytes / 4096)), bsize: 4096n });

describe('assertStateSpace', () => {
  it('refuses below the minimum, naming the dir and the free space', () => {
    expect(() => assertStateSpace('/var/lib/eci', undefined, fake(8192))).toThrow(/^the state dir \/var\/lib\/eci is full \(8 KiB free\): refusing to create a container until space is freed$/);
  });
  it('passes with room to spare, and when statfs is not available', () => {
    expect(() => assertStateSpace('/x', undefined, fake(MIN_FREE_BYTES + 4096))).not.toThrow();
    expect(() => assertStateSpace('/x', undefined, null)).not.toThrow(); // a runtime without statfs
  });
  it('fails closed when the dir cannot be checked', () => {
    const broken = () => { throw Object.assign(new Error('gone'), { code: 'ENOENT' }); };
    expect(() => assertStateSpace('/x', 'no start', broken)).toThrow('cannot check the state dir /x (ENOENT): no start');
  });
});
