// Builds the small static C programs in test/fixtures/c/ that tests run inside containers.
import { execFile } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const FIXTURES = new URL('../fixtures/c/', import.meta.url).pathname;
const OUT = join(new URL('../../node_modules/.cache/eci-cprog/', import.meta.url).pathname);

/** Compiles test/fixtures/c/<name>.c with `gcc -static -O2` (cached by mtime) and returns the binary. */
export async function buildC(name: string): Promise<string> {
  const src = join(FIXTURES, `${name}.c`);
  const bin = join(OUT, name);
  mkdirSync(OUT, { recursive: true });
  let fresh = false;
  try { fresh = statSync(bin).mtimeMs >= statSync(src).mtimeMs; } catch { /* not built yet */ }
  if (!fresh) await promisify(execFile)('gcc', ['-static', '-O2', '-Wall', '-o', bin, src]);
  return bin;
}
