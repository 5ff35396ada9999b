// The caller's view of a path for the manager's own follow-up work (actors/vetter/caller-path.ts).
import { describe, expect, it } from 'vitest';
import { callerAbsolutePath, procSelfLink } from '../../actors/vetter/caller-path.ts';

const links: Record<string, string> = { '/proc/40/fd/3': '/tmp/d', '/proc/41/fd/3': '/tmp/t', '/proc/41/cwd': '/work', '/proc/40/root': '/' };
const readlink = (p: string) => {
  const v = links[p];
  if (v === undefined) throw Object.assign(new Error(`ENOENT ${p}`), { code: 'ENOENT' });
  return v;
};

describe('procSelfLink', () => {
  it('splits the caller link from the rest', () => {
    expect(procSelfLink('/proc/self/fd/3')).toEqual({ thread: false, link: 'fd/3', rest: '' });
    expect(procSelfLink('//proc//thread-self/fd/12/sub/dir')).toEqual({ thread: true, link: 'fd/12', rest: 'sub/dir' });
    expect(procSelfLink('/proc/self/cwd/x')).toEqual({ thread: false, link: 'cwd', rest: 'x' });
  });
  it('leaves other paths alone', () => {
    for (const p of ['/proc/1/fd/3', '/proc/self/fd/x', '/proc/self/fdinfo/3', '/mnt', 'proc/self/fd/3', '/proc/selfish/fd/3']) expect(procSelfLink(p), p).toBeUndefined();
  });
});

describe('callerAbsolutePath', () => {
  it('reads /proc/self links of the process and /proc/thread-self links of the thread', () => {
    expect(callerAbsolutePath('/proc/self/fd/3', 41, readlink, 40)).toBe('/tmp/d');
    expect(callerAbsolutePath('/proc/thread-self/fd/3/proc', 41, readlink, 40)).toBe('/tmp/t/proc');
    expect(callerAbsolutePath('/proc/self/root/x', 41, readlink, 40)).toBe('/x');
  });
  it('resolves relative paths from the thread cwd and keeps absolute ones', () => {
    expect(callerAbsolutePath('sub/proc', 41, readlink)).toBe('/work/sub/proc');
    expect(callerAbsolutePath('/abs/proc', 41, readlink)).toBe('/abs/proc');
  });
  it('is undefined when the caller is gone', () => {
    expect(callerAbsolutePath('/proc/self/fd/9', 41, readlink)).toBeUndefined();
    expect(callerAbsolutePath('rel', 42, readlink)).toBeUndefined();
  });
});
