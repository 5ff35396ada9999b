// The plumbing shared by the long-lived eci-helper children (`serve`: helpers.ts, `perform`:
// performer.ts): the child and its fd-3 socket, the runs in flight with their guard timers, frame
// parsing, the kill, and the reading of a run's 'D' (done) frame.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { parseHelperOutput } from './errors.ts';

/** Longest a helper run may take before it is killed (it normally takes a few milliseconds). */
export const HELPER_TIMEOUT_MS = 60_000;

const signalNames = new Map<number, string>(Object.entries(osConstants.signals).map(([n, v]) => [v as number, n]));

/**
 * A long-lived helper child (`serve`, `perform`) that answers on fd 3 with frames: u32 length, then
 * u32 run id, one kind byte, the rest. The plumbing both share: the child and its socket, the runs
 * in flight with their guard timers, frame parsing, and the kill.
 */
export abstract class FramedHelper<R extends { guard: NodeJS.Timeout }> {
  protected readonly child: ChildProcess;
  protected readonly sock: Socket;
  protected readonly runs = new Map<number, R>();
  private nextId = 1;
  private inbuf: Buffer = Buffer.alloc(0);
  dead = false;

  /** `extraFds`: the child's fds 4, 5... */
  constructor(helper: string, verb: string, extraFds: number[] = []) {
    const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'ignore', 'ignore', 'pipe', ...extraFds];
    this.child = spawn(helper, [verb, String(process.pid)], { stdio });
    this.sock = this.child.stdio[3] as Socket;
    this.child.on('error', () => this.fail());
    this.sock.on('error', () => this.fail());
    this.sock.on('close', () => this.fail());
    this.sock.on('data', (d: Buffer) => this.onData(d));
    this.child.unref();
    this.sock.unref();
  }

  /** Run ids stay below bit 31: those with it set are the native fast path's (perform.h). */
  protected newId(): number {
    const id = this.nextId++;
    if (this.nextId > 0x7fffffff) this.nextId = 1;
    return id;
  }

  /** A run in flight; the helper kills a run at HELPER_TIMEOUT_MS, so one that does not answer by then is broken. */
  protected track(id: number, run: (guard: NodeJS.Timeout) => R): void {
    this.runs.set(id, run(setTimeout(() => this.fail(), HELPER_TIMEOUT_MS + 5_000)));
    if (this.runs.size === 1) this.sock.ref();
  }

  protected settle(id: number): R | undefined {
    const r = this.runs.get(id);
    if (!r) return undefined;
    this.runs.delete(id);
    clearTimeout(r.guard);
    if (this.runs.size === 0 && !this.dead) this.sock.unref();
    return r;
  }

  /** One frame (after the length); false: not a frame this helper sends (the helper is then failed). */
  protected abstract onFrame(id: number, kind: string, f: Buffer): boolean;

  /** Gone or broken: each subclass settles its runs its own way. */
  protected abstract fail(): void;

  private onData(d: Buffer): void {
    this.inbuf = this.inbuf.length ? Buffer.concat([this.inbuf, d]) : d;
    let off = 0;
    while (this.inbuf.length - off >= 4) {
      const len = this.inbuf.readUInt32LE(off);
      if (len < 5) return this.fail();
      if (this.inbuf.length - off - 4 < len) break;
      const f = this.inbuf.subarray(off + 4, off + 4 + len);
      off += 4 + len;
      if (!this.onFrame(f.readUInt32LE(0), String.fromCharCode(f[4]!), f)) return this.fail();
    }
    this.inbuf = off === this.inbuf.length ? Buffer.alloc(0) : this.inbuf.subarray(off);
  }

  /** Marks it dead and ends the child; false if it already was. */
  protected kill(): boolean {
    if (this.dead) return false;
    this.dead = true;
    try {
      this.child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
    this.sock.destroy();
    return true;
  }
}

/**
 * A 'D' frame (id, 'D', i32 code, i32 signal, u32 stdout length, stdout, stderr): the run's error, or
 * undefined. `skip`: bytes between the stdout length and stdout (a performer's 'A' frame).
 */
export function doneFailure(f: Buffer, skip = 0): unknown {
  const code = f.readInt32LE(5);
  const sig = f.readInt32LE(9);
  const outLen = f.readUInt32LE(13);
  const at = 17 + skip;
  const stdout = f.subarray(at, at + outLen).toString('utf8');
  const stderr = f.subarray(at + outLen).toString('utf8');
  const exit = sig ? { code: null, signal: signalNames.get(sig) ?? `SIG${sig}`, stderr } : { code, signal: null, stderr };
  return parseHelperOutput(stdout, exit);
}
