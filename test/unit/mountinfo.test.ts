import { describe, expect, it } from 'vitest';
import { commonAncestor, mountAt, overlayLayers, parseMountInfo, unescapeOctal } from '../../actors/mountinfo.ts';

const sample = [
  '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
  '300 22 0:50 / /var/lib/docker/overlay2/abc/merged rw,relatime - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/AAA:/var/lib/docker/overlay2/l/BBB,upperdir=/var/lib/docker/overlay2/abc/diff,workdir=/var/lib/docker/overlay2/abc/work',
  '301 22 0:51 / /mnt/with\\040space rw - tmpfs tmpfs rw',
  '302 22 0:52 / /mnt/with\\040space rw - tmpfs tmpfs rw,size=1k',
].join('\n');

describe('mountinfo', () => {
  it('parses fields and unescapes paths', () => {
    const m = parseMountInfo(sample);
    expect(m).toHaveLength(4);
    expect(m[2].mountPoint).toBe('/mnt/with space');
    expect(unescapeOctal('a\\134b')).toBe('a\\b');
  });
  it('returns the top mount at a path', () => {
    expect(mountAt(parseMountInfo(sample), '/mnt/with space')?.id).toBe(302);
    expect(mountAt(parseMountInfo(sample), '/nope')).toBeUndefined();
  });
  it('splits overlay layers', () => {
    const o = mountAt(parseMountInfo(sample), '/var/lib/docker/overlay2/abc/merged')!;
    expect(overlayLayers(o.superOptions)).toEqual({
      lower: ['/var/lib/docker/overlay2/l/AAA', '/var/lib/docker/overlay2/l/BBB'],
      upper: '/var/lib/docker/overlay2/abc/diff', work: '/var/lib/docker/overlay2/abc/work',
    });
    expect(overlayLayers('rw,lowerdir+=l/A,lowerdir+=l/B,upperdir=u,workdir=w').lower).toEqual(['l/A', 'l/B']);
  });
  it('finds the deepest common directory', () => {
    expect(commonAncestor(['/var/lib/docker/overlay2/x/diff', '/var/lib/docker/overlay2/abc/diff', '/var/lib/docker/overlay2/abc/work'])).toBe('/var/lib/docker/overlay2');
    expect(commonAncestor(['/a/b', '/a/bc'])).toBe('/a');
    expect(commonAncestor(['/a/b'])).toBe('/a/b');
    expect(commonAncestor(['/x', '/y'])).toBe('/');
  });
});
