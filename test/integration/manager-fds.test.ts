// The daemon passes on nothing it inherited: an fd its parent left without close-on-exec (here its
// fd 20, a marker file: Node itself marks only fds 0-15 close-on-exec) stays in the daemon but reaches none of the children it starts (nats-server,
// the fd-holder), so it can never follow a helper into a container either.
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startManager } from '../helpers/manager.ts';

/** The fds of process pid that point at `file`. */
function holding(pid: number, file: string): string[] {
  try {
    return readdirSync(`/proc/${pid}/fd`).filter((fd) => {
      try { return readlinkSync(`/proc/${pid}/fd/${fd}`) === file; } catch { return false; }
    });
  } catch {
    return []; /* gone */
  }
}

describe('fds the daemon inherited', () => {
  it('stay out of nats-server and the fd-holder it starts', async () => {
    const dir = mkdtempSync('/tmp/eci-inherit-');
    const file = join(dir, 'inherited-marker');
    writeFileSync(file, '');
    const fd = openSync(file, 'r');
    const m = await startManager({ inheritFd: fd }).finally(() => closeSync(fd));
    try {
      expect(holding(m.pid(), file)).toEqual(['20']);
      const kids = readFileSync(`/proc/${m.pid()}/task/${m.pid()}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      const names = kids.map((k) => { try { return readFileSync(`/proc/${k}/comm`, 'utf8').trim(); } catch { return ''; } });
      expect(names).toEqual(expect.arrayContaining(['nats-server', 'eci-fdholder']));
      for (const k of kids) expect(holding(k, file), `child ${k}`).toEqual([]);
    } finally {
      await m.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** The EEVDF slice (ns) of a task, from /proc/<pid>/sched. */
const sliceOf = (pid: number) => Number(/^se\.slice\s*:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/sched`, 'utf8'))?.[1]);

describe('the short slice (native/cmd/sched-slice.h) is the vetted path\'s alone', () => {
  const childrenOf = (pid: number) => readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);

  it('the daemon\'s main thread and its children (nats-server, the fd-holder) keep the kernel\'s slice', async () => {
    // On them, a short slice let their wake-ups (audit work, SEEN notes) preempt the vetted call's path.
    const m = await startManager();
    try {
      expect(sliceOf(m.pid())).toBe(sliceOf(process.pid)); // the kernel's default, as this test's own
      const kids = childrenOf(m.pid());
      expect(kids.length).toBeGreaterThanOrEqual(2);
      expect(kids.map(sliceOf)).toEqual(kids.map(() => sliceOf(process.pid)));
    } finally {
      await m.destroy();
    }
  });
});
