// The code also runs under Deno: the CLI starts with `deno run -A bin/eci.ts` (from the sources, no
// build), answers --version and --help, and validates a settings file the same way as under Node.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/manager.ts';

const DENO = join(REPO, 'node_modules/deno/deno');
const deno = (...args: string[]) => spawnSync(DENO, ['run', '-A', join(REPO, 'bin/eci.ts'), ...args], { encoding: 'utf8', cwd: REPO, timeout: 60_000 });

describe.skipIf(!existsSync(DENO))(`the CLI under Deno${existsSync(DENO) ? '' : ' (skipped: npm install brings node_modules/deno)'}`, () => {
  it('starts, prints its version and help', () => {
    const v = deno('--version');
    expect(v.status, v.stderr).toBe(0);
    expect(v.stdout).toMatch(/^eci version \d+\.\d+\.\d+/);
    expect(deno('--help').stdout).toContain('Usage: eci COMMAND');
  });
  it('gives the same one-line errors', () => {
    const r = deno('settings', 'validate', '/nonexistent/settings.json');
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe('eci: /nonexistent/settings.json: cannot read (ENOENT)');
  });
});
