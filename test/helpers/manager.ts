// Starts a real eci manager (bin/eci daemon) with its own state dir, socket and NATS port, plus an
// eci-runc wrapper script that points at it, for engines that cannot pass environment variables.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, mkdirSync, openSync, closeSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { control } from '../../cli/control-client.ts';
import { DEFAULT_SETTINGS } from '../../actors/settings.ts';

/** Host ids of the default pool's first and second ranges (what a test manager hands out first). */
export const FIRST = DEFAULT_SETTINGS.idRange.base;
export const SECOND = FIRST + DEFAULT_SETTINGS.idRange.size;
import { managerDirs, registerBus } from './bus.ts';

export const REPO = resolve(new URL('../..', import.meta.url).pathname);

export interface TestManager {
  dir: string;
  socket: string;
  natsUrl: string;
  /** Absolute path of a runtime launcher bound to this manager. */
  runtime: string;
  env: Record<string, string>;
  pid(): number;
  ps(): Promise<{ containers: { id: string; state: string; uid?: { hostID: number } }[]; ranges: Record<string, string> }>;
  log(): string;
  /** Clean stop (SIGTERM), leaving the embedded nats-server running unless told otherwise. */
  stop(): Promise<void>;
  kill9(): Promise<void>;
  restart(): Promise<void>;
  /** Stops the manager and its nats-server and removes the dir. */
  destroy(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
    s.on('error', rej);
  });
}

async function waitUp(socket: string, child: ChildProcess, logFile: string): Promise<void> {
  const end = Date.now() + 20_000;
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new Error(`eci daemon exited with ${child.exitCode}:\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
    try {
      await control(socket, { op: 'ping' }, 1000);
      return;
    } catch { await new Promise((r) => setTimeout(r, 50)); }
  }
  throw new Error(`eci daemon did not come up:\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
}

/**
 * `inheritFd`: an fd the daemon gets as its fd 20, without close-on-exec (as from a careless parent;
 * Node itself marks only fds 0-15 close-on-exec at start).
 */
export async function startManager(o: { dir?: string; env?: Record<string, string>; inheritFd?: number } = {}): Promise<TestManager> {
  const dir = o.dir ?? mkdtempSync('/tmp/ecim-');
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o711); // container root must reach its rootfs under <dir>/run
  const port = await freePort();
  const socket = join(dir, 'run', 'eci.sock');
  const env: Record<string, string> = {
    ECI_STATE_DIR: join(dir, 'state'), ECI_RUN_DIR: join(dir, 'run'), ECI_SOCKET: socket, ECI_NATS_PORT: String(port), ...o.env,
  };
  const runtime = join(dir, 'eci-runc');
  writeFileSync(runtime, `#!/bin/sh\nECI_SOCKET=${socket} exec ${REPO}/bin/eci-runc "$@"\n`);
  chmodSync(runtime, 0o755);
  const logFile = join(dir, 'daemon.log');
  let child: ChildProcess;
  const launch = async () => {
    const fd = openSync(logFile, 'a');
    // ECI_TEST_MANAGER_NODE_ARGS: Node flags for the manager only (e.g. --cpu-prof, which NODE_OPTIONS refuses).
    const nodeArgs = process.env.ECI_TEST_MANAGER_NODE_ARGS?.trim().split(/\s+/) ?? [];
    child = spawn(process.execPath, [...nodeArgs, join(REPO, 'bin/eci'), 'daemon'], { env: { ...process.env, ...env }, stdio: ['ignore', fd, fd, ...(o.inheritFd === undefined ? [] : [...Array<'ignore'>(17).fill('ignore'), o.inheritFd])] });
    closeSync(fd);
    await waitUp(socket, child, logFile);
  };
  const exited = () => new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
  await launch();
  // The embedded server's identities (an external bus is registered by the test that runs it).
  if (!env.ECI_NATS_URL) registerBus(`nats://127.0.0.1:${port}`, managerDirs(dir));
  const natsPidFile = join(dir, 'state', 'nats.pid');
  const m: TestManager = {
    dir, socket, natsUrl: `nats://127.0.0.1:${port}`, runtime, env,
    pid: () => child.pid!,
    ps: () => control(socket, { op: 'ps' }),
    log: () => readFileSync(logFile, 'utf8'),
    async stop() { child.kill('SIGTERM'); await exited(); },
    async kill9() { child.kill('SIGKILL'); await exited(); },
    async restart() { await launch(); },
    async destroy() {
      if (child.exitCode === null && child.signalCode === null) { child.kill('SIGTERM'); await exited(); }
      try {
        const pid = Number(readFileSync(natsPidFile, 'utf8'));
        if (pid > 0) process.kill(pid, 'SIGTERM');
      } catch { /* already stopped with the manager */ }
      await new Promise((r) => setTimeout(r, 200));
      // A manager killed with -9 leaves its mounts (the /proc FUSE server, rootfs mounts): detach
      // whatever is still mounted under the dir, deepest first, before removing it.
      const mps = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((p) => p && (p === dir || p.startsWith(`${dir}/`)));
      for (const mp of mps.sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', mp]);
      if (process.env.ECI_KEEP_MANAGER_LOG) spawnSync('cp', [logFile, `${dir}.daemon.log`]); // to diagnose a failure
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return m;
}
