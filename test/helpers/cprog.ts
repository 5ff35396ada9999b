// Small C test programs (test/fixtures/c/<name>.c), compiled on demand with `gcc -static -O2` so they
// run inside any container rootfs. Binaries are cached by source hash under $TMPDIR/eci-cprog/.
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { mkdir, readFile, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const FIXTURES_C = fileURLToPath(new URL('../fixtures/c/', import.meta.url));
const CACHE = join(tmpdir(), 'eci-cprog');

function probeGcc(): string | null {
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'gcc is not installed';
  }
  return null;
}

/** Why C fixtures cannot be built here (null when gcc is usable): use with describe.skipIf. */
export const gccMissing: string | null = probeGcc();

/** Compiles test/fixtures/c/<name>.c (static, -O2) and returns the binary's path (cached). */
export async function buildC(name: string): Promise<string> {
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error(`bad C fixture name ${name}`);
  if (gccMissing) throw new Error(`cannot build ${name}.c: ${gccMissing}`);
  const src = join(FIXTURES_C, `${name}.c`);
  const hash = createHash('sha256').update(await readFile(src)).digest('hex').slice(0, 16);
  const out = join(CACHE, `${name}-${hash}`);
  if (existsSync(out)) return out;
  await mkdir(CACHE, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  try {
    await run('gcc', ['-static', '-O2', '-Wall', '-Wextra', '-pthread', '-o', tmp, src]);
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`gcc failed on ${src}: ${err.stderr?.trim() || err.message}`);
  }
  await rename(tmp, out); // atomic: concurrent builders each produce a whole file
  return out;
}

/**
 * Builds each fixture and copies it into `dir` (made if missing) as `dir/<name>`, mode 0755, with
 * `dir` itself 0755: a directory a container's root (an unprivileged host uid) can bind and run from.
 */
export async function installC(dir: string, ...names: string[]): Promise<string> {
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  for (const name of names) {
    copyFileSync(await buildC(name), join(dir, name));
    chmodSync(join(dir, name), 0o755);
  }
  return dir;
}
