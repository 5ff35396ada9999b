import { describe, expect, it } from 'vitest';
import { checkBindMounts, imageTrusted, normalizeImage, type Resolved } from '../../actors/policy/mounts.ts';
import type { OciSpec } from '../../actors/runc/spec.ts';

// A fake host tree: path -> resolved path (symlinks already followed).
const tree: Record<string, string> = {
  '/etc/docker': '/etc/docker', '/etc/docker/daemon.json': '/etc/docker/daemon.json', '/etc': '/etc',
  '/home/u': '/home/u', '/home/u/link': '/etc/docker/daemon.json', '/home/u/data': '/home/u/data',
  '/home': '/home', '/run/docker.sock': '/run/docker.sock', '/var/run/docker.sock': '/run/docker.sock',
  '/var/lib/docker/containers/abc/mounts/shm': '/var/lib/docker/containers/abc/mounts/shm', '/opt/x': '/opt/x', '/b/rootfs': '/b/rootfs',
};
let ino = 1n;
const inodes = new Map<string, bigint>();
const resolve = (p: string): Resolved | undefined => {
  const path = tree[p.replace(/\/+$/, '') || '/'];
  if (!path) return undefined;
  if (!inodes.has(path)) inodes.set(path, ino++);
  return { path, dev: 1n, ino: inodes.get(path)!, isDir: !path.endsWith('.json') };
};
const policy = { restricted: ['/etc/docker', '/var/lib/docker/containers', '/proc'], shared: ['/home', '/tmp'], engineSockets: ['/var/run/docker.sock'], trustedImages: ['docker:*'] };
const spec = (...mounts: [string, string?][]): OciSpec => ({
  root: { path: 'rootfs' }, linux: {},
  mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }, ...mounts.map(([source, opt]) => ({ destination: '/mnt', type: 'bind', source, options: ['rbind', ...(opt ? [opt] : [])] }))],
});
/** A spec as Docker writes it: its root in <data-root>/overlay2/<layer>/merged. */
const docker = (s: OciSpec, dataRoot: string): OciSpec => ({ ...s, root: { path: `${dataRoot}/overlay2/l1/merged` } });
const mobyBundle = (id: string) => `/run/d/containerd/daemon/io.containerd.runtime.v2.task/moby/${id}`;
const check = (s: OciSpec, image?: { name?: string; id?: string }) => checkBindMounts(s, { id: 'abc', bundle: '/b', policy, image, resolve });

describe('bind-mount policy', () => {
  it('refuses a restricted path, inside one, or containing one', () => {
    expect(() => check(spec(['/etc/docker/daemon.json']))).toThrow("can't mount /etc/docker/daemon.json because it's configured as a restricted host mount");
    expect(() => check(spec(['/etc/docker']))).toThrow("can't mount /etc/docker because it's configured as a restricted host mount");
    expect(() => check(spec(['/etc']))).toThrow("can't mount /etc because it contains /etc/docker, which is configured as a restricted host mount");
    expect(() => check(spec(['/']))).toThrow(/can't mount \/ because it contains/);
  });
  it('sees through symlinks, .., // and relative paths', () => {
    expect(() => check(spec(['/home/u/link']))).toThrow("can't mount /home/u/link because it's configured as a restricted host mount (it resolves to /etc/docker/daemon.json, inside /etc/docker)");
    expect(() => check(spec(['/home/u/../../etc/docker/daemon.json']))).toThrow(/restricted host mount/);
    expect(() => check(spec(['//etc//docker']))).toThrow(/restricted host mount/);
    expect(() => check(spec(['../etc/docker']))).toThrow(/restricted host mount/); // relative to the bundle /b
  });
  it('allows shared paths and says when a path is not shared', () => {
    const d = check(spec(['/home/u/data', 'ro']));
    expect(d).toEqual([{ index: 1, kind: 'volume', source: '/home/u/data', resolved: expect.objectContaining({ path: '/home/u/data' }), readonly: true }]);
    expect(() => check(spec(['/opt/x']))).toThrow("can't mount /opt/x because it is not in the host paths shared with containers (fileSharing: /home, /tmp)");
  });
  it("passes the engine's own per-container files and ignores non-bind mounts", () => {
    expect(checkBindMounts(docker(spec(['/var/lib/docker/containers/abc/mounts/shm']), '/var/lib/docker'), { id: 'abc', bundle: mobyBundle('abc'), policy, resolve })).toEqual([{ index: 1, kind: 'engine-file' }]);
    expect(check(spec())).toEqual([]);
  });
  it('mounts the engine socket only into trusted images, and never when the image is unknown', () => {
    expect(() => check(spec(['/var/run/docker.sock']))).toThrow(/only be mounted into trusted images .*the container's image is unknown/);
    expect(() => check(spec(['/var/run/docker.sock']), { name: 'busybox' })).toThrow(/image busybox is not on the list/);
    expect(check(spec(['/var/run/docker.sock']), { name: 'docker:24' })[0].kind).toBe('engine-socket');
    expect(check(spec(['/run/docker.sock']), { name: 'docker.io/library/docker:latest' })[0].kind).toBe('engine-socket');
  });
});

describe('image trust', () => {
  const id = 'sha256:' + 'b'.repeat(64);
  it('normalizes names', () => {
    expect(normalizeImage('busybox')).toBe('busybox:latest');
    expect(normalizeImage('docker.io/library/busybox:1')).toBe('busybox:1');
    expect(normalizeImage('localhost:5000/x')).toBe('localhost:5000/x:latest');
  });
  it('matches tags, wildcards and pinned digests', () => {
    expect(imageTrusted({ name: 'docker:24' }, ['docker:*'])).toBe(true);
    expect(imageTrusted({ name: 'docker' }, ['docker:latest'])).toBe(true);
    expect(imageTrusted({ name: 'dockerx:1' }, ['docker:*'])).toBe(false);
    expect(imageTrusted({ name: 'evil', id }, [`docker@${id}`])).toBe(true);
    expect(imageTrusted({ name: 'docker:24', id: 'sha256:' + 'c'.repeat(64) }, [`docker@${id}`])).toBe(false);
    expect(imageTrusted(undefined, ['*'])).toBe(false);
    expect(imageTrusted({ name: 'x' }, ['*'])).toBe(true);
  });
});
