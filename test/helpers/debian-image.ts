// Real Debian 12 images for the compatibility and system-container suites, built from Debian's own
// packages by debootstrap (debian-image.sh) from the mirror apt already uses, and cached as tarballs
// under /var/cache/eci-test (ECI_TEST_CACHE overrides it). The cache key is the builder script's hash:
// editing a package list builds anew. Concurrent test files share one build (flock).
//
//   const img = await importDebian(d, 'base');           // into a test dockerd, tag eci-debian12-base
//   const ref = await importDebianPodman(p, 'systemd');  // into a test podman
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import type { Dockerd } from './dockerd.ts';
import type { Podman } from './podman.ts';
import { runCmd } from './run.ts';

/** base: sudo, setcap/capsh, ping, sqlite3, busybox (httpd, wget), procps; systemd: + systemd as init; docker: + docker.io. */
export type DebianFlavor = 'base' | 'systemd' | 'docker';

const SCRIPT = fileURLToPath(new URL('./debian-image.sh', import.meta.url));
export const IMAGE_CACHE = process.env.ECI_TEST_CACHE ?? '/var/cache/eci-test';

/** Why the Debian images cannot be built here ('' when they can). */
export function debianImageSkipReason(): string {
  if (process.getuid?.() !== 0) return 'needs root';
  try {
    readFileSync('/usr/sbin/debootstrap');
  } catch {
    return 'debootstrap is not installed (bash .ci/deps installs it)';
  }
  return '';
}

/** The cached rootfs tarball of `flavor`, built first if missing (minutes the first time). */
export async function debianTarball(flavor: DebianFlavor): Promise<string> {
  const key = createHash('sha256').update(readFileSync(SCRIPT)).digest('hex').slice(0, 10);
  mkdirSync(IMAGE_CACHE, { recursive: true, mode: 0o700 });
  const out = join(IMAGE_CACHE, `debian12-${flavor}-${key}.tar`);
  const r = await runCmd('flock', [join(IMAGE_CACHE, `.debian12-${flavor}.lock`), 'bash', SCRIPT, flavor, out], undefined, undefined, 20 * 60_000);
  if (r.code !== 0) throw new Error(`building the Debian 12 ${flavor} image failed (${r.code}): ${r.stderr.trim().split('\n').slice(-8).join(' | ')}`);
  return out;
}

/** `docker import`s the flavor into a test dockerd as `name`; returns `name`. */
export async function importDebian(d: Dockerd, flavor: DebianFlavor, name = `eci-debian12-${flavor}`): Promise<string> {
  const tar = await debianTarball(flavor);
  const r = await d.docker(['import', '--change', 'CMD ["bash"]', tar, name]);
  if (r.code !== 0) throw new Error(`docker import ${name} failed (${r.code}): ${r.stderr.trim()}`);
  return name;
}

/** `podman import`s the flavor into a test podman as `name`; returns the name podman knows it by. */
export async function importDebianPodman(p: Podman, flavor: DebianFlavor, name = `eci-debian12-${flavor}`): Promise<string> {
  const tar = await debianTarball(flavor);
  p.created?.images.push(`localhost/${name}`);
  const r = await p.podman(['import', '--change', 'CMD ["bash"]', tar, name]);
  if (r.code !== 0) throw new Error(`podman import ${name} failed (${r.code}): ${r.stderr.trim()}`);
  return `localhost/${name}:latest`;
}
