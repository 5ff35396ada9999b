// The compatibility suite's one table of documented differences from runc: the README lists exactly
// its rows, and the comparison fails on any undocumented difference and on a documented one that no
// longer holds.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SCRIPT_CASES } from '../helpers/compat-cases.ts';
import { compareWithRunc, DIFFERENCES, meminfoFields, type Outcome } from '../helpers/compat-refusals.ts';

const README = new URL('../../README.md', import.meta.url);
const ok = (stdout: string, code = 0, stderr = ''): Outcome => ({ code, stdout, stderr });

describe('compat-refusals', () => {
  it('the README section "Where eci differs from runc" has one table with exactly these rows', () => {
    const readme = readFileSync(README, 'utf8');
    const section = /\n## Where eci differs from runc\n([\s\S]*?)\n## /.exec(readme)?.[1];
    expect(section, 'README section').toBeDefined();
    const rows = section!.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| case |'));
    expect(rows).toEqual(DIFFERENCES.map((d) => `| ${d.case} | ${d.kind} | ${d.what} |`));
    expect(section!.match(/^\|---/gm)).toHaveLength(1);
  });

  it('names each case once, and only for kinds of deliberate difference', () => {
    const names = DIFFERENCES.map((d) => d.case);
    expect(new Set(names).size).toBe(names.length);
    expect(new Set(SCRIPT_CASES.map((c) => c.name)).size).toBe(SCRIPT_CASES.length);
    for (const d of DIFFERENCES) expect(d.what).not.toContain('|');
  });

  it('passes equal outcomes, ignoring trailing blanks, and fails any other difference with both outputs', () => {
    expect(compareWithRunc('any', ok('a\nb\n'), ok('a  \nb\n\n'))).toBe('');
    const exit = compareWithRunc('any', ok('a'), ok('a', 1, 'boom'));
    expect(exit).toContain('any: eci differs from runc');
    expect(exit).toContain('boom');
    expect(compareWithRunc('any', ok('a'), ok('b'))).not.toBe('');
    // stderr alone does not count: tools print warnings that name hosts and ids.
    expect(compareWithRunc('any', ok('a', 0, 'x'), ok('a', 0, 'y'))).toBe('');
  });

  it('keeps long outputs short in the failure message', () => {
    const long = Array.from({ length: 500 }, (_, i) => `line ${i}`).join('\n');
    const msg = compareWithRunc('any', ok('a'), ok(long));
    expect(msg).toContain('(460 more lines)');
    expect(msg).not.toContain('line 41\n');
  });

  it('accepts a documented difference only while it holds', () => {
    const refused = ok('', 125, "docker: eci containers can't share namespaces [pid] with the host (because ...)");
    expect(compareWithRunc('host pid namespace', ok('host-pids'), refused)).toBe('');
    // eci doing what runc does here would be a hole, not compatibility.
    expect(compareWithRunc('host pid namespace', ok('host-pids'), ok('host-pids'))).toContain('no longer does what the table documents');
    expect(compareWithRunc('setuid on a shared host volume', ok('chmod=0\n4755'), ok('chmod=1\n755'))).toBe('');
    expect(compareWithRunc('setuid on a shared host volume', ok('chmod=0\n4755'), ok('chmod=0\n4755'))).not.toBe('');
  });

  it('meminfo: every field of the container within its limit, the host above it', () => {
    const host = ok('MemTotal: 24000000 kB\nMemFree: 20000000 kB\nCached: 2000000 kB');
    const fields = ['MemTotal:  262144 kB', 'MemFree: 260000 kB', 'MemAvailable: 260000 kB', 'Cached: 0 kB', 'Active: 8 kB', 'Inactive: 448 kB', 'SReclaimable: 0 kB'];
    expect(meminfoFields(fields.join('\n')).MemTotal).toBe(262144);
    expect(compareWithRunc('meminfo with --memory', host, ok(fields.join('\n')))).toBe('');
    // The host's page cache mixed into the container's MemTotal (issue 14) is not the documented view.
    const mixed = fields.map((l) => (l.startsWith('Cached') ? 'Cached: 2000000 kB' : l)).join('\n');
    expect(compareWithRunc('meminfo with --memory', host, ok(mixed))).not.toBe('');
  });
});
