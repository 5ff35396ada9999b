import { describe, expect, it } from 'vitest';
import { clampRlimits, parseHardLimits, type OciSpec } from '../../actors/runc/spec.ts';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max stack size            8388608              unlimited            bytes     
Max processes             96365                96365                processes 
Max open files            20000                524288               files     
Max locked memory         8388608              8388608              bytes     
`;

const spec = (rlimits: unknown): OciSpec => ({ root: { path: 'r' }, linux: {}, process: { args: ['sh'], rlimits } });

describe('parseHardLimits', () => {
  it('reads the hard column by OCI name, unlimited as Infinity', () => {
    expect(parseHardLimits(LIMITS)).toEqual({
      RLIMIT_CPU: Infinity, RLIMIT_STACK: Infinity, RLIMIT_NPROC: 96365, RLIMIT_NOFILE: 524288, RLIMIT_MEMLOCK: 8388608,
    });
  });
});

describe('clampRlimits', () => {
  const hard = parseHardLimits(LIMITS);
  it("lowers Podman's nofile 1048576 to eci's hard limit, soft at most hard", () => {
    const out = clampRlimits(spec([{ type: 'RLIMIT_NOFILE', hard: 1048576, soft: 1048576 }, { type: 'RLIMIT_NPROC', hard: 4194304, soft: 1024 }]), hard);
    expect((out.process as { rlimits: unknown }).rlimits).toEqual([
      { type: 'RLIMIT_NOFILE', hard: 524288, soft: 524288 },
      { type: 'RLIMIT_NPROC', hard: 96365, soft: 1024 },
    ]);
  });
  it('keeps limits already within, unlimited host limits and unknown types as asked', () => {
    const r = [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 512 }, { type: 'RLIMIT_CPU', hard: 10, soft: 5 }, { type: 'RLIMIT_RTTIME', hard: 7, soft: 7 }];
    expect((clampRlimits(spec(r), hard).process as { rlimits: unknown }).rlimits).toEqual(r);
  });
  it('leaves a spec without rlimits untouched and does not modify its input', () => {
    const s = spec(undefined);
    expect(clampRlimits(s, hard)).toBe(s);
    const r = [{ type: 'RLIMIT_NOFILE', hard: 1048576, soft: 1048576 }];
    clampRlimits(spec(r), hard);
    expect(r[0].hard).toBe(1048576);
  });
  it('refuses malformed entries in one line', () => {
    expect(() => clampRlimits(spec([42]), hard)).toThrow('process.rlimits: expected an array of {type, hard, soft}');
  });
});

describe('parseSpec rlimits', async () => {
  const { parseSpec } = await import('../../actors/runc/spec.ts');
  it('refuses malformed rlimits before anything is made', () => {
    expect(() => parseSpec(JSON.stringify(spec([{ type: 'RLIMIT_NOFILE', hard: '1' , soft: 1 }])), 'c')).toThrow('c: process.rlimits: expected an array of {type, hard, soft}');
    expect(() => parseSpec(JSON.stringify(spec([{ type: 'RLIMIT_NOFILE', hard: 1, soft: 1 }])), 'c')).not.toThrow();
  });
});
