// How eci-helper mount-as enters the caller's namespaces (native/cmd/as-common.h, step 2): one atomic
// setns on a pidfd where the caller is in a user namespace of its own (every eci container), and the
// per-namespace path where that is refused (a caller in our own user namespace: re-entering it is
// EINVAL). Both must land the mount in the caller's mount namespace only, as the caller. The callers
// are `unshare` children in private mount namespaces, so nothing reaches the host's mount table.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountAs, umountAs } from '../../native/index.ts';

const HELPER = new URL('../../native/bin/eci-helper', import.meta.url);
const root = process.getuid?.() === 0;

/** A sleeping `unshare ARGS` child; resolves once it is inside its new namespaces. */
async function caller(args: string[]): Promise<ChildProcess> {
  const c = spawn('unshare', [...args, 'sh', '-c', 'echo in; exec sleep 60'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((res, rej) => {
    c.once('error', rej);
    c.once('exit', (code) => rej(new Error(`unshare exited ${code}`)));
    c.stdout!.once('data', () => res());
  });
  return c;
}

const mountsOf = (pid: number | 'self') => readFileSync(`/proc/${pid}/mountinfo`, 'utf8');

describe.skipIf(!root || !existsSync(HELPER))('mount-as: entering the caller', () => {
  let dir: string;
  const kids: ChildProcess[] = [];
  beforeAll(() => {
    dir = mkdtempSync('/tmp/eci-as-enter-');
    chmodSync(dir, 0o755);
  });
  afterAll(() => {
    for (const k of kids) k.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const [name, args] of [
    ['a caller in a user namespace of its own (one setns on the pidfd)', ['--user', '--map-root-user', '--mount', '--propagation', 'private']],
    ['a caller in our own user namespace (the per-namespace path)', ['--mount', '--propagation', 'private']],
  ] as const) {
    it(`mounts and unmounts a tmpfs for ${name}, in its mount namespace only`, async () => {
      const target = join(dir, name.length.toString());
      mkdirSync(target);
      const c = await caller([...args]);
      kids.push(c);
      const pid = c.pid!;
      await mountAs({ pid, source: 'tmpfs', target, fstype: 'tmpfs', data: 'size=64k' });
      const line = mountsOf(pid).split('\n').find((l) => l.split(' ')[4] === target);
      expect(line).toMatch(/ - tmpfs tmpfs /);
      expect(mountsOf('self').split('\n').some((l) => l.split(' ')[4] === target)).toBe(false);
      await umountAs({ pid, target });
      expect(mountsOf(pid).split('\n').some((l) => l.split(' ')[4] === target)).toBe(false);
      // A pid that is gone fails to get there (no half-made state), on either path.
      c.kill('SIGKILL');
      await new Promise((r) => c.once('exit', r));
      await expect(mountAs({ pid, source: 'tmpfs', target, fstype: 'tmpfs' })).rejects.toMatchObject({ code: 'ESRCH', syscall: 'open' });
    });
  }
});
