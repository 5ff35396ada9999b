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

describe('the short slice the daemon asks for (native/cmd/sched-slice.h)', () => {
  const childrenOf = (pid: number) => readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);

  it('is its main thread\'s and its children\'s (nats-server, the fd-holder); ECI_SCHED_SLICE_US=0 keeps the kernel\'s', async () => {
    const m = await startManager();
    try {
      expect(sliceOf(m.pid())).toBe(100_000);
      const kids = childrenOf(m.pid());
      expect(kids.length).toBeGreaterThanOrEqual(2);
      expect(kids.map(sliceOf)).toEqual(kids.map(() => 100_000));
    } finally {
      await m.destroy();
    }
    const off = await startManager({ env: { ECI_SCHED_SLICE_US: '0' } });
    try {
      expect(sliceOf(off.pid())).not.toBe(100_000);
      expect(sliceOf(off.pid())).toBe(sliceOf(process.pid)); // the kernel's default, as this test's own
    } finally {
      await off.destroy();
    }
  });
});
