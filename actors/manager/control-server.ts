// The unix socket the eci-runc launcher (runtime calls) and `eci ps`-style clients (control ops)
// talk to. Frames from one connection are answered in order; a bad frame or a failed call ends that
// connection only, never the manager.
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import process from 'node:process';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { encodeReply, FrameDecoder, type ShimFrame, type ShimReply } from '../shim-protocol.ts';

/** One launcher connection: a runtime call, then (for spawned runc) its exit status. */
export interface RuntimeCalls {
  request(cwd: string, argv: string[]): Promise<ShimReply>;
  /** undefined: the launcher got its final answer before this report (see RuntimeSession). */
  exit(status: number): Promise<ShimReply | undefined>;
}

/** One `eci run` client connection (native/cmd/eci-run.c): start, its exit, signals, its hangup. */
export interface RunCalls {
  start(f: Extract<ShimFrame, { kind: 'run' }>): Promise<ShimReply>;
  exit(f: Extract<ShimFrame, { kind: 'run-exit' }>): Promise<ShimReply>;
  /** A signal the client got (answered at once, not queued behind a start). */
  signal(signo: number): void;
  /** The connection ended (the client died, or is done). */
  closed(): void;
}

export interface ControlHandlers {
  /** A fresh session per connection; `answer` writes a reply to it outside the request/report order. */
  session(answer: (r: ShimReply) => void): RuntimeCalls;
  /** A control op (`{op: 'ping' | 'ps'}`) answered as JSON. */
  control(body: unknown): Promise<unknown>;
  /** `eci run` sessions; without it, run frames are answered with a failure. */
  run?(): RunCalls;
}

export class ControlServer {
  private server?: Server;

  constructor(private readonly path: string, private readonly handlers: ControlHandlers, private readonly log: Logger) {}

  async listen(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o711 });
    rmSync(this.path, { force: true });
    const server = createServer((s) => this.serve(s));
    this.server = server;
    // Only root may connect (a connect needs write permission on the socket). The umask covers the
    // moment between bind and chmod, whatever umask the manager was started with.
    const umask = process.umask(0o077);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.path, () => resolve());
      });
    } finally {
      process.umask(umask);
    }
    chmodSync(this.path, 0o600);
  }

  /** Stops accepting (calls in flight finish) and removes the socket. */
  async close(): Promise<void> {
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    rmSync(this.path, { force: true });
  }

  private serve(sock: Socket): void {
    const dec = new FrameDecoder();
    const session = this.handlers.session((r) => sock.write(encodeReply(r)));
    let queue = Promise.resolve();
    let run: RunCalls | undefined;
    const runCalls = () => (run ??= this.handlers.run?.());
    sock.on('error', () => {});
    sock.on('close', () => run?.closed());
    sock.on('data', (chunk) => {
      let frames;
      try {
        frames = dec.push(chunk);
      } catch (e) {
        this.log.warn({ err: e }, 'bad frame from a client');
        sock.destroy();
        return;
      }
      for (const f of frames) {
        if (f.kind === 'signal') {
          runCalls()?.signal(f.signal);
          continue;
        }
        queue = queue.then(async () => {
          if (f.kind === 'request') sock.write(encodeReply(await session.request(f.cwd, f.argv)));
          else if (f.kind === 'exit') {
            const r = await session.exit(f.status);
            if (r) sock.write(encodeReply(r));
          }
          else if (f.kind === 'run' || f.kind === 'run-exit') {
            const r = runCalls();
            const reply = !r ? { action: 'fail' as const, text: 'eci: this manager does not serve eci run\n', status: 125 }
              : f.kind === 'run' ? await r.start(f) : await r.exit(f);
            sock.write(encodeReply(reply));
          }
          else sock.write(JSON.stringify(await this.handlers.control(f.body)) + '\0');
        }).catch((e) => {
          // The launcher went away mid-call, or a bug: never take the manager down for one client.
          this.log.error({ err: e }, 'runtime call failed');
          sock.destroy();
        });
      }
    });
  }
}
