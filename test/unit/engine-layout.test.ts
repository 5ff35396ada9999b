// The engine's own files, named volumes and other containers' dirs, learned from the create call
// (bundle, --pid-file, root path) for a dockerd with a non-default data-root and a default Podman;
// and the bind decisions they lead to, including refusals of another container's dirs.
import { describe, expect, it } from 'vitest';
import { engineLayout, isNamedVolume } from '../../actors/policy/engine-layout.ts';
import { checkBindMounts, type MountPolicy, type Resolved } from '../../actors/policy/mounts.ts';
import type { OciSpec } from '../../actors/runc/spec.ts';
import { BUILTIN_RESTRICTED, DEFAULT_SETTINGS } from '../../actors/settings.ts';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const DATA = '/srv/docker-data'; // not /var/lib/docker, and not shared
const dockerBundle = (id: string) => `/run/docker-x/containerd/daemon/io.containerd.runtime.v2.task/moby/${id}`;
const PG = '/var/lib/containers/storage';
const PR = '/run/containers/storage';
const podmanBundle = (id: string) => `${PG}/overlay-containers/${id}/userdata`;
const podmanPid = (id: string) => `${PR}/overlay-containers/${id}/userdata/pidfile`;

// A fake host tree: path -> [resolved path, is a dir].
const tree: Record<string, [string, boolean]> = {};
const add = (p: string, dir = false, to = p) => (tree[p] = [to, dir]);
for (const id of [A, B]) {
  for (const f of ['hosts', 'hostname', 'resolv.conf', 'config.v2.json']) add(`${DATA}/containers/${id}/${f}`);
  add(`${DATA}/containers/${id}`, true);
  for (const f of ['hosts', 'hostname', 'resolv.conf', '.containerenv']) add(`${PR}/overlay-containers/${id}/userdata/${f}`);
  add(`${podmanBundle(id)}/config.json`);
  add(`${podmanBundle(id)}/shm`, true);
}
for (const d of [DATA, `${DATA}/containers`, `${DATA}/volumes`, `${DATA}/volumes/v1`, `${DATA}/volumes/v1/_data`, `${PG}/volumes/pv/_data`, '/home', '/home/u', '/usr/share/zoneinfo', '/opt']) add(d, true);
add('/home/u/other-hosts', false, `${DATA}/containers/${B}/hosts`);
add('/home/u/podman-hosts', false, `${PR}/overlay-containers/${B}/userdata/hosts`);
add('/etc/localtime', false, '/usr/share/zoneinfo/Etc/UTC');
add('/usr/share/zoneinfo/Etc/UTC');
add('/usr/share/zoneinfo/evil', false, '/etc/shadow'); // a symlink: judged where it leads
add('/usr/bin/docker-init', false, '/usr/bin/tini-static');
add('/opt/docker-init');
let ino = 1n;
const inodes = new Map<string, bigint>();
const resolve = (p: string): Resolved | undefined => {
  const t = tree[p.replace(/\/+$/, '') || '/'];
  if (!t) return undefined;
  if (!inodes.has(t[0])) inodes.set(t[0], ino++);
  return { path: t[0], dev: 1n, ino: inodes.get(t[0])!, isDir: t[1] };
};
const policy: MountPolicy = {
  restricted: BUILTIN_RESTRICTED, shared: ['/home'], engineSockets: [], trustedImages: [],
  readOnlySystemFiles: DEFAULT_SETTINGS.readOnlySystemFiles,
};
const bind = (source: string, destination = '/mnt', ro = false) => ({ destination, type: 'bind', source, options: ['rbind', ...(ro ? ['ro'] : [])] });
const dockerSpec = (...mounts: object[]): OciSpec => ({ root: { path: `${DATA}/overlay2/0123/merged` }, process: { args: ['sh'] }, linux: {}, mounts });
const podmanSpec = (...mounts: object[]): OciSpec => ({ root: { path: `${PG}/overlay/0456/merged` }, process: { args: ['sh'] }, linux: {}, mounts });
const inDocker = (s: OciSpec, id = A) => checkBindMounts(s, { id, bundle: dockerBundle(id), policy, resolve });
const inPodman = (s: OciSpec, id = A) => checkBindMounts(s, { id, bundle: podmanBundle(id), pidFile: podmanPid(id), policy, resolve });

describe('engine layout', () => {
  it("derives Docker's data-root from the root path, only for a bundle of this id in containerd's moby namespace", () => {
    expect(engineLayout(dockerSpec(), { id: A, bundle: dockerBundle(A) })).toEqual({
      ownDirs: [dockerBundle(A), `${DATA}/containers/${A}`],
      volumeRoots: [`${DATA}/volumes`],
      containerDirs: ['/run/docker-x/containerd/daemon/io.containerd.runtime.v2.task/moby', `${DATA}/containers`],
    });
    // Another id's bundle, or a bundle elsewhere: nothing is derived but the bundle itself.
    expect(engineLayout(dockerSpec(), { id: A, bundle: dockerBundle(B) })).toEqual({ ownDirs: [dockerBundle(B)], volumeRoots: [], containerDirs: [] });
    expect(engineLayout(dockerSpec(), { id: A, bundle: '/tmp/b' })).toEqual({ ownDirs: ['/tmp/b'], volumeRoots: [], containerDirs: [] });
  });
  it("derives Podman's graphroot from the bundle and its runroot from --pid-file", () => {
    expect(engineLayout(podmanSpec(), { id: A, bundle: podmanBundle(A), pidFile: podmanPid(A) })).toEqual({
      ownDirs: [podmanBundle(A), `${PR}/overlay-containers/${A}/userdata`],
      volumeRoots: [`${PG}/volumes`],
      containerDirs: [`${PG}/overlay-containers`, `${PR}/overlay-containers`],
    });
    // A pid file of another container is not this container's dir.
    expect(engineLayout(podmanSpec(), { id: A, bundle: podmanBundle(A), pidFile: podmanPid(B) }).ownDirs).toEqual([podmanBundle(A)]);
  });
  it('a named volume is exactly <root>/<name>/_data', () => {
    expect(isNamedVolume(`${DATA}/volumes/v1/_data`, [`${DATA}/volumes`])).toBe(true);
    for (const p of [`${DATA}/volumes/v1`, `${DATA}/volumes/v1/_data/x`, `${DATA}/volumes/a/b/_data`, `${DATA}/volumes`]) expect(isNamedVolume(p, [`${DATA}/volumes`]), p).toBe(false);
  });
});

describe('engine-managed binds', () => {
  it("idmaps this container's hosts, hostname and resolv.conf (writable, as under runc) wherever the data-root is", () => {
    const s = dockerSpec(...['resolv.conf', 'hostname', 'hosts'].map((f) => bind(`${DATA}/containers/${A}/${f}`, `/etc/${f}`)));
    expect(inDocker(s).map((d) => [d.kind, 'readonly' in d && d.readonly])).toEqual([['engine-writable', false], ['engine-writable', false], ['engine-writable', false]]);
    const p = podmanSpec(...['hosts', 'hostname', '.containerenv'].map((f) => bind(`${PR}/overlay-containers/${A}/userdata/${f}`)), bind(`${podmanBundle(A)}/shm`, '/dev/shm'));
    expect(inPodman(p).map((d) => d.kind)).toEqual(['engine-writable', 'engine-writable', 'engine-writable', 'engine-file']);
  });
  it('passes its other own files as they are (never writable by container root)', () => {
    expect(inDocker(dockerSpec(bind(`${DATA}/containers/${A}/config.v2.json`)))).toEqual([{ index: 0, kind: 'engine-file' }]);
    expect(inPodman(podmanSpec(bind(`${podmanBundle(A)}/config.json`)))).toEqual([{ index: 0, kind: 'engine-file' }]);
    expect(inDocker(dockerSpec(bind(`${DATA}/containers/${A}/hosts`, '/etc/hosts', true)))).toEqual([{ index: 0, kind: 'engine-file' }]);
  });
  it("refuses another container's engine dir by name, also through a symlink or a parent", () => {
    expect(() => inDocker(dockerSpec(bind(`${DATA}/containers/${B}/hosts`)))).toThrow(`can't mount ${DATA}/containers/${B}/hosts because it's configured as a restricted host mount`);
    expect(() => inDocker(dockerSpec(bind('/home/u/other-hosts')))).toThrow(`because it's configured as a restricted host mount (it resolves to ${DATA}/containers/${B}/hosts`);
    expect(() => inDocker(dockerSpec(bind(`${DATA}/containers`)))).toThrow('restricted host mount');
    expect(() => inDocker(dockerSpec(bind(DATA)))).toThrow(`can't mount ${DATA} because it contains ${DATA}/containers`);
    expect(() => inPodman(podmanSpec(bind(`${PR}/overlay-containers/${B}/userdata/hosts`)))).toThrow('restricted host mount');
    expect(() => inPodman(podmanSpec(bind('/home/u/podman-hosts')))).toThrow(`(it resolves to ${PR}/overlay-containers/${B}/userdata/hosts`);
    expect(() => inPodman(podmanSpec(bind(`${podmanBundle(B)}/config.json`)))).toThrow('restricted host mount');
    // Podman's defaults are restricted even for a call whose layout is not recognised.
    expect(() => checkBindMounts(podmanSpec(bind(`${PR}/overlay-containers/${B}/userdata/hosts`)), { id: A, bundle: '/tmp/b', policy, resolve })).toThrow('restricted host mount');
  });
  it("mounts the engine's named volumes (idmapped) wherever its data-root is, and only those", () => {
    expect(inDocker(dockerSpec(bind(`${DATA}/volumes/v1/_data`, '/data')))).toEqual([{ index: 0, kind: 'volume', source: `${DATA}/volumes/v1/_data`, resolved: expect.objectContaining({ path: `${DATA}/volumes/v1/_data` }), readonly: false }]);
    expect(inPodman(podmanSpec(bind(`${PG}/volumes/pv/_data`, '/data')))[0].kind).toBe('volume');
    expect(() => inDocker(dockerSpec(bind(`${DATA}/volumes/v1`)))).toThrow('not in the host paths shared with containers');
    // Not from a Docker bundle: no data-root is learned, the path is just an unshared one.
    expect(() => checkBindMounts(dockerSpec(bind(`${DATA}/volumes/v1/_data`)), { id: A, bundle: '/tmp/b', policy, resolve })).toThrow('not in the host paths shared with containers');
  });
  it('judges a local volume made with -o bind,device=DIR as a bind of DIR', () => {
    const vol = dockerSpec(bind(`${DATA}/volumes/v1/_data`, '/data'));
    const withOrigin = (origin: string | null | undefined) => checkBindMounts(vol, { id: A, bundle: dockerBundle(A), policy, resolve, bindOrigin: () => origin });
    expect(() => withOrigin('/etc')).toThrow(`can't mount ${DATA}/volumes/v1/_data because it contains /etc/docker, which is configured as a restricted host mount`);
    expect(() => withOrigin('/opt')).toThrow(`the volume binds /opt, which is not in the host paths shared with containers`);
    expect(() => withOrigin(null)).toThrow('the volume binds a host directory eci cannot locate');
    expect(withOrigin('/home/u')[0].kind).toBe('volume'); // a shared dir passes as it would as a bind
    expect(withOrigin(undefined)[0].kind).toBe('volume'); // a plain volume (or tmpfs, nfs...)
  });
});

describe('read-only system files', () => {
  it('mounts /etc/localtime and the zoneinfo read-only, refuses them read-write, and judges a symlink where it leads', () => {
    expect(inDocker(dockerSpec(bind('/etc/localtime', '/etc/localtime', true)))).toEqual([{ index: 0, kind: 'system-file', source: '/etc/localtime', resolved: expect.objectContaining({ path: '/usr/share/zoneinfo/Etc/UTC' }), readonly: true }]);
    expect(inDocker(dockerSpec(bind('/usr/share/zoneinfo', '/usr/share/zoneinfo', true)))[0].kind).toBe('system-file');
    expect(() => inDocker(dockerSpec(bind('/etc/localtime', '/x')))).toThrow("can't mount /etc/localtime read-write because it is a read-only system file (readOnlySystemFiles); mount it with :ro");
    expect(() => inDocker(dockerSpec(bind('/usr/share/zoneinfo/evil', '/etc/timezone', true)))).toThrow('not in the host paths shared with containers');
  });
  it('is an administrator setting: an empty list refuses them as any unshared path', () => {
    expect(() => checkBindMounts(dockerSpec(bind('/etc/localtime', '/etc/localtime', true)), { id: A, bundle: dockerBundle(A), policy: { ...policy, readOnlySystemFiles: [] }, resolve })).toThrow('not in the host paths shared with containers');
  });
  it("mounts the engine's --init binary read-only only as the container's first process, from a system binary dir", () => {
    const init = (src: string, ro = true, args = ['/sbin/docker-init', '--', 'sh']) => ({ ...dockerSpec(bind(src, '/sbin/docker-init', ro)), process: { args } });
    expect(inDocker(init('/usr/bin/docker-init'))).toEqual([{ index: 0, kind: 'system-file', source: '/usr/bin/docker-init', resolved: expect.objectContaining({ path: '/usr/bin/tini-static' }), readonly: true }]);
    expect(() => inDocker(init('/usr/bin/docker-init', false))).toThrow('read-write');
    expect(() => inDocker(init('/usr/bin/docker-init', true, ['sh']))).toThrow('not in the host paths shared with containers');
    expect(() => inDocker(init('/opt/docker-init'))).toThrow('not in the host paths shared with containers');
  });
});
