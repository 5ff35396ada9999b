// Starts (or adopts) the embedded nats-server that the manager uses when ECI_NATS_URL is unset.
// JetStream on, store under the state dir, loopback only, and only with a password (the config,
// with the identities and their permissions, is made by bus/auth.ts and kept 0600 in the state dir).
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync, rmSync, openSync, closeSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { BusError } from './errors.ts';

export const DEFAULT_NATS_PORT = 14222;

export interface EmbeddedServer {
  url: string;
  pid: number;
  /** True when this call started the server (false: adopted one left by an earlier manager). */
  started: boolean;
  /** Something the operator should know (the pid file could not be written). */
  warning?: string;
  stop(): Promise<void>;
}

function portOpen(port: number, timeoutMs = 200): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    const t = setTimeout(() => { s.destroy(); resolve(false); }, timeoutMs);
    s.once('connect', () => { clearTimeout(t); s.destroy(); resolve(true); });
    s.once('error', () => { clearTimeout(t); resolve(false); });
  });
}

function serverArgs(pid: number): string[] | undefined {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return cmd.some((a) => a.endsWith('nats-server')) ? cmd : undefined;
  } catch {
    return undefined;
  }
}

function aliveNatsServer(pid: number, storeDir: string): boolean {
  return serverArgs(pid)?.includes(storeDir) ?? false;
}

/** Where the embedded server's config is written. */
export const configPath = (stateDir: string) => join(stateDir, 'nats-server.conf');

/** The embedded server of this state dir still runs (a zombie or a reused pid does not count). */
export function isAlive(pid: number, stateDir: string): boolean {
  return aliveNatsServer(pid, join(stateDir, 'nats'));
}

async function waitExit(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try { process.kill(pid, 0); } catch { return true; }
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

export interface EmbeddedOptions {
  stateDir: string;
  port?: number;
  binary?: string;
  /** The server config for this port (bus/auth.ts serverConfig). */
  config: (port: number) => string;
  /**
   * False when the identities were just made: a server left running knows the old ones (or none,
   * from before authentication), so it is stopped and started again with the new config.
   */
  adopt: boolean;
}

export async function startEmbedded(o: EmbeddedOptions): Promise<EmbeddedServer> {
  const port = o.port ?? DEFAULT_NATS_PORT;
  const storeDir = join(o.stateDir, 'nats');
  const pidFile = join(o.stateDir, 'nats.pid');
  const conf = configPath(o.stateDir);
  mkdirSync(storeDir, { recursive: true, mode: 0o700 });
  const url = `nats://127.0.0.1:${port}`;

  const stopPid = async (pid: number) => {
    try { process.kill(pid, 'SIGTERM'); } catch { return; }
    if (!(await waitExit(pid, 5000))) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } await waitExit(pid, 2000); }
    rmSync(pidFile, { force: true });
  };

  // A manager that died without stopping its server leaves it running: adopt it, it holds our data.
  let oldPid = 0;
  try { oldPid = Number(readFileSync(pidFile, 'utf8').trim()); } catch { /* none */ }
  if (oldPid > 0 && aliveNatsServer(oldPid, storeDir)) {
    // Only a server that runs our config with the identities we hold: an older one (no
    // authentication, or passwords we no longer have) is stopped cleanly and started again.
    if (o.adopt && serverArgs(oldPid)!.includes(conf) && (await portOpen(port))) {
      return { url, pid: oldPid, started: false, stop: () => stopPid(oldPid) };
    }
    await stopPid(oldPid);
  }
  if (await portOpen(port)) {
    throw new BusError('EBUSSERVER', `port ${port} on 127.0.0.1 is taken by another process; set ECI_NATS_PORT or ECI_NATS_URL`);
  }

  // Passwords inside: root only, written before the server reads it.
  writeFileSync(conf, o.config(port), { mode: 0o600 });
  chmodSync(conf, 0o600);
  const logFd = openSync(join(o.stateDir, 'nats-server.log'), 'a');
  const child = spawn(o.binary ?? 'nats-server', ['-c', conf, '-js', '-sd', storeDir, '-a', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', logFd, logFd],
    detached: true, // survives a manager crash so JetStream is not cut mid-write; adopted on restart
  });
  closeSync(logFd);
  const spawnError = new Promise<never>((_, reject) => child.once('error', (e) => reject(new BusError('EBUSSERVER', `cannot start nats-server: ${e.message}`, { cause: e }))));
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new BusError('EBUSSERVER', `nats-server exited with code ${code} during start; see ${join(o.stateDir, 'nats-server.log')}`))));
  child.unref();
  const ready = (async () => {
    const end = Date.now() + 10_000;
    while (Date.now() < end) {
      if (await portOpen(port)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new BusError('EBUSTIMEOUT', `nats-server did not listen on ${port} within 10s`);
  })();
  try {
    await Promise.race([ready, spawnError, exited]);
  } catch (e) {
    if (child.pid) await stopPid(child.pid);
    throw e;
  }
  const pid = child.pid!;
  // The pid file lets a later manager adopt this server after a crash. Without it (state dir full)
  // the server still runs and is supervised from memory; the caller is told why adoption may fail.
  let warning: string | undefined;
  try {
    writeFileSync(pidFile, `${pid}\n`);
  } catch (e) {
    rmSync(pidFile, { force: true });
    warning = `cannot write ${pidFile} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): a manager started after a crash will not find this nats-server`;
  }
  return { url, pid, started: true, warning, stop: () => stopPid(pid) };
}
