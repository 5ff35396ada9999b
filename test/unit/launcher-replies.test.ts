// bin/eci-runc against a fake manager: the final answer to a `spawn` may come before the launcher
// reports the child's exit (even in the same read as the spawn answer); `pass` then means the
// child's own status.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
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
async function fakeManager(first: ShimReply[], afterExit?: ShimReply): Promise<{ socket: string; frames: ShimFrame[] }> {
  dir = mkdtempSync(join(tmpdir(), 'eci-launcher-'));
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
