// bin/eci-runc against a fake manager: the final answer to a `spawn` may come before the launcher
// reports the child's exit (even in the same read as the spawn answer); `pass` then means the
// child's own status.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeReply, FrameDecoder, type ShimFrame, type ShimReply } from '../../actors/shim-protocol.ts';
import { REPO } from '../helpers/manager.ts';

let dir: string | undefined;
let server: Server | undefined;

afterEach(async () => {
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** A manager that answers the request with `first` (one write of all its replies) and records the frames it got. */
async function fakeManager(replies: ShimReply[] | ((dir: string) => ShimReply[]), afterExit?: ShimReply): Promise<{ socket: string; frames: ShimFrame[] }> {
  dir = mkdtempSync(join(tmpdir(), 'eci-launcher-'));
  const first = typeof replies === 'function' ? replies(dir) : replies;
  const socket = join(dir, 'eci.sock');
  const frames: ShimFrame[] = [];
  server = createServer((sock: Socket) => {
    const dec = new FrameDecoder();
    sock.on('error', () => {});
    sock.on('data', (chunk) => {
      for (const f of dec.push(chunk)) {
        frames.push(f);
        if (f.kind === 'request') sock.write(Buffer.concat(first.map(encodeReply)));
        if (f.kind === 'exit' && afterExit) sock.write(encodeReply(afterExit));
      }
    });
  });
  await new Promise<void>((r) => server!.listen(socket, r));
  return { socket, frames };
}

function launcher(socket: string, args: string[]): Promise<number | null> {
  const child = spawn(join(REPO, 'bin/eci-runc'), args, { env: { ...process.env, ECI_SOCKET: socket }, stdio: 'ignore' });
  return new Promise((r) => child.on('exit', (code) => r(code)));
}

describe('eci-runc spawn answers', () => {
  it('pass sent with the spawn answer: runs the child, reports its exit, exits with its status', async () => {
    const m = await fakeManager([{ action: 'spawn', argv: ['/bin/sh', '-c', 'exit 3'] }, { action: 'pass' }]);
    expect(await launcher(m.socket, ['delete', 'c1'])).toBe(3);
    expect(m.frames.map((f) => f.kind)).toEqual(['request', 'exit']);
    expect(m.frames[1]).toEqual({ kind: 'exit', status: 3 });
  });

  it('done after the exit report still decides the status', async () => {
    const m = await fakeManager([{ action: 'spawn', argv: ['/bin/sh', '-c', 'exit 3'] }], { action: 'done', status: 0 });
    expect(await launcher(m.socket, ['delete', 'c1'])).toBe(0);
    expect(m.frames[1]).toEqual({ kind: 'exit', status: 3 });
  });

  it('error sent ahead is printed as the call failing', async () => {
    const m = await fakeManager([{ action: 'spawn', argv: ['/bin/sh', '-c', 'exit 0'] }, { action: 'error', message: 'no' }]);
    expect(await launcher(m.socket, ['delete', 'c1'])).toBe(1);
  });
});

describe('eci-runc fifo answers (start without runc)', () => {
  const mkfifo = (path: string) => expect(spawnSync('mkfifo', [path]).status).toBe(0);
  const RUNC = ['/bin/sh', '-c', 'exit 7']; // stands in for runc start: its status shows that it ran

  it("takes the init's byte from the fifo, removes it, reports 0, and never runs runc", async () => {
    let init: ReturnType<typeof spawn> | undefined;
    let fifo = '';
    const m = await fakeManager((d) => {
      fifo = join(d, 'exec.fifo');
      mkfifo(fifo);
      // The init's side: blocks opening the fifo for writing until a reader comes, writes "0".
      init = spawn('/bin/sh', ['-c', `echo 0 > ${fifo}; sleep 5`], { stdio: 'ignore' });
      return [{ action: 'fifo', fifo, pid: init.pid!, argv: RUNC }];
    });
    try {
      expect(await launcher(m.socket, ['start', 'c1'])).toBe(0);
      await new Promise((r) => setTimeout(r, 50));
      expect(m.frames.at(-1)).toEqual({ kind: 'exit', status: 0 });
      expect(existsSync(fifo)).toBe(false);
    } finally {
      init?.kill('SIGKILL');
    }
  });

  it('runs runc (argv) instead when there is no fifo', async () => {
    const m = await fakeManager([{ action: 'fifo', fifo: '/nonexistent/exec.fifo', pid: process.pid, argv: RUNC }]);
    expect(await launcher(m.socket, ['start', 'c1'])).toBe(7);
    await new Promise((r) => setTimeout(r, 50));
    expect(m.frames.at(-1)).toEqual({ kind: 'exit', status: 7 });
  });

  it('runs runc (argv) instead when the init is gone before it wrote, leaving the fifo to it', async () => {
    const gone = spawnSync('/bin/true').pid;
    let fifo = '';
    const m = await fakeManager((d) => {
      fifo = join(d, 'exec.fifo');
      mkfifo(fifo);
      return [{ action: 'fifo', fifo, pid: gone, argv: RUNC }];
    });
    expect(await launcher(m.socket, ['start', 'c1'])).toBe(7);
    expect(existsSync(fifo)).toBe(true);
  });
});
