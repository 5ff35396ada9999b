import { describe, expect, it } from 'vitest';
import { bindOrigin, commonAncestor, mountAt, overlayLayers, parseMountInfo, unescapeOctal } from '../../actors/mountinfo.ts';

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

describe('bindOrigin', () => {
  const info = [
    '22 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
    '30 22 0:25 / /run rw - tmpfs tmpfs rw',
    '40 22 254:0 /etc /var/lib/docker/volumes/v1/_data rw - ext4 /dev/vda rw',
    '41 22 0:26 / /var/lib/docker/volumes/t/_data rw - tmpfs tmpfs rw',
    '42 30 0:25 /a/b /var/lib/docker/volumes/r/_data rw - tmpfs tmpfs rw',
    '43 22 0:27 /x /var/lib/docker/volumes/n/_data rw - ext4 /dev/vdb rw',
  ].join('\n');
  const m = parseMountInfo(info);
  it('names the host dir a subtree bind shows, nothing for whole filesystems, null when it cannot tell', () => {
    expect(bindOrigin(m, '/var/lib/docker/volumes/v1/_data')).toBe('/etc');
    expect(bindOrigin(m, '/var/lib/docker/volumes/r/_data')).toBe('/run/a/b');
    expect(bindOrigin(m, '/var/lib/docker/volumes/t/_data')).toBeUndefined();
    expect(bindOrigin(m, '/var/lib/docker/volumes/none/_data')).toBeUndefined();
    expect(bindOrigin(m, '/var/lib/docker/volumes/n/_data')).toBeNull();
  });
});
