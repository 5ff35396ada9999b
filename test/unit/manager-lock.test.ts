import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LOCK_FILE, lockDir, startTimeOf } from '../../actors/manager/lock.ts';

describe('one manager per dir', () => {
  const dirs: string[] = [];
  afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });
  const dir = () => { const d = mkdtempSync('/tmp/eci-lock-'); dirs.push(d); return d; };

  it('takes a free dir, refuses a second holder while the first lives, and frees it on release', () => {
    const d = dir();
    const a = lockDir(d);
    expect(readFileSync(join(d, LOCK_FILE), 'utf8').trim()).toBe(`${process.pid} ${startTimeOf(process.pid)}`);
    // A second manager, as another (live) process: a child stands in for it.
    const second = spawn('sleep', ['30']);
    try {
      expect(() => lockDir(d, second.pid!)).toThrow(`another manager (pid ${process.pid}) is running on ${d}`);
    } finally {
      second.kill();
    }
    a.release();
    expect(existsSync(join(d, LOCK_FILE))).toBe(false);
    lockDir(d).release();
  });

  it('takes over a lock whose holder is gone, or whose pid now belongs to a later process', async () => {
    const d = dir();
    const child = spawn('sleep', ['0']);
    const deadPid = child.pid!;
    await new Promise((r) => child.on('exit', r));
    writeFileSync(join(d, LOCK_FILE), `${deadPid} 1\n`);
    lockDir(d).release();
    const other = spawn('sleep', ['30']); // alive, but started later than the recorded holder: a reused pid
    try {
      writeFileSync(join(d, LOCK_FILE), `${other.pid} 1\n`);
      const l = lockDir(d);
      expect(readFileSync(join(d, LOCK_FILE), 'utf8').trim()).toBe(`${process.pid} ${startTimeOf(process.pid)}`);
      l.release();
    } finally {
      other.kill();
    }
  });

  it('leaves no temporary files behind', () => {
    const d = dir();
    lockDir(d).release();
    expect(readdirSync(d)).toEqual([]);
  });
});

