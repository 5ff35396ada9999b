// Bind-mount policy, applied when a container is created. Pure: the filesystem is asked through
// `resolve` (realpath + stat), so every rule is unit-tested with a fake tree.
//   - engine-managed per-container files (Docker's <data-root>/containers/<id>/hosts, the bundle)
//     pass as they are;
//   - an engine socket passes only for a trusted image;
//   - anything that is, is inside, or contains a restricted path is refused;
//   - anything outside the shared paths (fileSharing) is refused;
// and every decision is taken on the fully resolved path (symlinks, '..', '//').
import { isAbsolute, join, normalize, resolve as resolvePath } from 'node:path';
import { EciError } from '../errors.ts';
import type { OciSpec } from '../runc/spec.ts';

export interface Resolved { path: string; dev: bigint; ino: bigint; isDir: boolean }

export interface MountPolicy {
  restricted: string[];
  shared: string[];
  engineSockets: string[];
  trustedImages: string[];
}

export interface ImageInfo { name?: string; id?: string }

export interface OciMount { destination: string; type?: string; source?: string; options?: string[] }

export type BindDecision =
  | { index: number; kind: 'engine-file' }
  | { index: number; kind: 'volume' | 'engine-socket'; source: string; resolved: Resolved; readonly: boolean };

export function isBind(m: OciMount): boolean {
  return m.type === 'bind' || (m.options ?? []).some((o) => o === 'bind' || o === 'rbind');
}

const within = (p: string, dir: string) => p === dir || p.startsWith(dir === '/' ? '/' : dir + '/');

/** Docker/containerd names for the same image compare equal: docker.io/library/x:latest == x. */
export function normalizeImage(ref: string): string {
  let r = ref.replace(/^docker\.io\//, '').replace(/^library\//, '');
  const at = r.indexOf('@');
  const name = at >= 0 ? r.slice(0, at) : r;
  if (at < 0 && !/:[^/]+$/.test(name)) r = `${r}:latest`;
  return r;
}

export function imageTrusted(image: ImageInfo | undefined, trusted: string[]): boolean {
  if (!image || (!image.name && !image.id)) return false;
  for (const t of trusted) {
    if (t === '*') return true;
    const digest = /(?:^|@)(sha256:[0-9a-f]{64})$/.exec(t)?.[1];
    if (digest) {
      if (image.id === digest) return true; // a digest pins one exact image
      continue;
    }
    if (!image.name) continue;
    const want = normalizeImage(t);
    const have = normalizeImage(image.name);
    if (want.endsWith(':*') ? have.startsWith(want.slice(0, -1)) : want === have) return true;
  }
  return false;
}

export function checkBindMounts(
  spec: OciSpec,
  c: { id: string; bundle: string; policy: MountPolicy; image?: ImageInfo; resolve: (p: string) => Resolved | undefined },
): BindDecision[] {
  const out: BindDecision[] = [];
  const mounts = (spec.mounts ?? []) as OciMount[];
  const real = (p: string) => c.resolve(p)?.path ?? normalize(p);
  const restricted = c.policy.restricted.flatMap((r) => [...new Set([normalize(r), real(r)])]);
  const shared = c.policy.shared.map(real);
  const sockets = new Set(c.policy.engineSockets.flatMap((s) => [normalize(s), real(s)]));
  const engineDirs = [normalize(c.bundle)];

  mounts.forEach((m, index) => {
    if (!isBind(m)) return;
    if (typeof m.source !== 'string' || m.source === '') throw new EciError('EBADSPEC', `mounts[${index}] (${m.destination}): bind mount without a source`);
    const given = normalize(isAbsolute(m.source) ? m.source : join(c.bundle, m.source));
    const r = c.resolve(given);
    const path = r?.path ?? given;
    // Engine-managed files of this very container (hosts, hostname, resolv.conf, shm).
    if (r && (engineDirs.some((d) => within(path, d)) || path.includes(`/containers/${c.id}/`))) {
      out.push({ index, kind: 'engine-file' });
      return;
    }
    const readonly = (m.options ?? []).includes('ro');
    if (sockets.has(given) || sockets.has(path)) {
      if (!imageTrusted(c.image, c.policy.trustedImages)) {
        throw new EciError('EPOLICY', `can't mount ${m.source} because the engine socket may only be mounted into trusted images (dockerSocketMount.imageList); ${c.image?.name ?? c.image?.id ? `image ${c.image?.name ?? c.image?.id} is not on the list` : "the container's image is unknown"}`);
      }
      if (!r) throw new EciError('EPOLICY', `can't mount ${m.source}: no such file or directory`);
      out.push({ index, kind: 'engine-socket', source: m.source, resolved: r, readonly });
      return;
    }
    for (const p of new Set([given, path])) {
      for (const x of restricted) {
        if (within(p, x)) {
          throw new EciError('EPOLICY', `can't mount ${m.source} because it's configured as a restricted host mount${p !== given || given !== m.source ? ` (it resolves to ${p}, inside ${x})` : ''}`);
        }
        if (within(x, p)) {
          throw new EciError('EPOLICY', `can't mount ${m.source} because it contains ${x}, which is configured as a restricted host mount`);
        }
      }
    }
    if (!shared.some((s) => within(path, s))) {
      throw new EciError('EPOLICY', `can't mount ${m.source} because it is not in the host paths shared with containers (fileSharing: ${c.policy.shared.join(', ')})`);
    }
    if (!r) throw new EciError('EPOLICY', `can't mount ${m.source}: no such file or directory`);
    out.push({ index, kind: 'volume', source: m.source, resolved: r, readonly });
  });
  return out;
}

/** Resolves relative to the bundle, for callers that need the same rule as checkBindMounts. */
export const bindSourceOf = (bundle: string, source: string) => (isAbsolute(source) ? normalize(source) : resolvePath(bundle, source));
