// eci-helper runs (cmd/eci-helper.c): one process per operation, or a fork of the long-lived helper
// server (`eci-helper serve`, one per manager, cmd/serve.h) when it is up; same outputs and errors.
// Also cloexecInherited, which keeps the manager's inherited fds out of every child it starts.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { callAddon, nativeFile } from './addon.ts';
import { NativeError, errnoOf, parseHelperOutput } from './errors.ts';
import { FramedHelper, HELPER_TIMEOUT_MS, doneFailure } from './framed-helper.ts';

/** Absolute path of native/bin/eci-helper (built by `npm run build`). */
export function helperPath(): string {
  return nativeFile('./bin/eci-helper');
}

/**
 * Marks every fd from 3 up close-on-exec (call once, at manager start): what the manager inherited from
 * whoever started it never reaches its children (nats-server, the fd-holder, helpers in containers).
 */
export function cloexecInherited(): void {
  callAddon((a) => a.cloexecInherited());
}


/** Runs eci-helper; resolves on {"ok":true}, rejects with the NativeError it reports. */
export function runHelper(args: string[]): Promise<void> {
  return runHelperWithFd(args, undefined);
}


/**
 * Runs eci-helper with `fd` (a notify fd, if any) as its fd 3; resolves on {"ok":true}. Goes through the
 * helper server (eci-helper serve) when it is up, else spawns the helper; same outputs and errors.
 */
export function runHelperWithFd(args: string[], fd: number | undefined): Promise<void> {
  const s = helperServer();
  return s ? s.run(args, fd) : spawnHelperWithFd(args, fd);
}

/** Runs eci-helper as a process of its own (the way without a helper server). */
function spawnHelperWithFd(args: string[], fd: number | undefined): Promise<void> {
  const helper = helperPath();
  return new Promise((resolve, reject) => {
    const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'pipe', 'pipe'];
    if (fd !== undefined) stdio.push(fd);
    const child = spawn(helper, args, { stdio });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), HELPER_TIMEOUT_MS);
    child.on('error', (e: Error & { code?: string; errno?: number }) => {
      clearTimeout(timer);
      reject(new NativeError({
        code: e.code ?? 'EIO',
        errno: typeof e.errno === 'number' ? Math.abs(e.errno) : errnoOf('EIO'),
        syscall: 'spawn',
        message: `cannot run ${helper}: ${e.message}`,
        path: helper,
        cause: e,
      }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const failure = parseHelperOutput(stdout, { code, signal, stderr });
      if (failure) reject(failure);
      else resolve();
    });
  });
}

// ---------- the helper server ----------

interface ServerRun {
  args: string[];
  fd: number | undefined;
  started: boolean;
  resolve: () => void;
  reject: (e: unknown) => void;
  guard: NodeJS.Timeout;
}

class HelperServer extends FramedHelper<ServerRun> {
  constructor(helper: string) {
    super(helper, 'serve');
  }

  run(args: string[], fd: number | undefined): Promise<void> {
    let cwd: string;
    try {
      cwd = process.cwd();
    } catch {
      return spawnHelperWithFd(args, fd);
    }
    const env: string[] = [];
    for (const k of Object.keys(process.env)) {
      const v = process.env[k];
      if (v !== undefined) env.push(`${k}=${v}`);
    }
    const strs = [cwd, ...args, ...env];
    if (strs.some((x) => x.includes('\0'))) return spawnHelperWithFd(args, fd); // spawn says what is wrong
    const body = Buffer.from(strs.join('\0') + '\0', 'utf8');
    const id = this.newId();
    const head = Buffer.alloc(20);
    head.writeUInt32LE(16 + body.length, 0);
    head.writeUInt32LE(id, 4);
    head.writeInt32LE(fd ?? -1, 8);
    head.writeUInt32LE(args.length, 12);
    head.writeUInt32LE(env.length, 16);
    return new Promise<void>((resolve, reject) => {
      this.track(id, (guard) => ({ args, fd, started: false, resolve, reject, guard }));
      this.sock.write(Buffer.concat([head, body]));
    });
  }

  protected onFrame(id: number, kind: string, f: Buffer): boolean {
    if (kind === 'S') {
      const r = this.runs.get(id);
      if (r) r.started = true;
    } else if (kind === 'F') {
      const r = this.settle(id);
      if (r) spawnHelperWithFd(r.args, r.fd).then(r.resolve, r.reject);
    } else if (kind === 'D' && f.length >= 17) {
      const r = this.settle(id);
      serverFailures = 0;
      if (!r) return true;
      const failure = doneFailure(f);
      if (failure) r.reject(failure);
      else r.resolve();
    } else {
      return false;
    }
    return true;
  }

  /** The server is gone or broken: runs it never started go to spawn; started ones fail as a killed helper. */
  protected fail(): void {
    if (!this.kill()) return;
    if (server === this) server = undefined;
    if (++serverFailures >= 3) serverRetryAt = Date.now() + 30_000;
    for (const id of [...this.runs.keys()]) {
      const r = this.settle(id)!;
      if (!r.started) spawnHelperWithFd(r.args, r.fd).then(r.resolve, r.reject);
      else r.reject(parseHelperOutput('', { code: null, signal: 'SIGKILL', stderr: 'eci-helper serve died during the run' }));
    }
  }
}

let server: HelperServer | undefined;
let serverFailures = 0;
let serverRetryAt = 0;

/** The helper server, started on first use (and again after it failed); undefined: spawn instead. */
function helperServer(): HelperServer | undefined {
  if (server && !server.dead) return server;
  if (process.env.ECI_HELPER_SERVER === '0' || Date.now() < serverRetryAt) return undefined;
  const helper = helperPath();
  if (!existsSync(helper)) return undefined;
  try {
    server = new HelperServer(helper);
  } catch {
    server = undefined;
  }
  return server;
}
