// The runtime launcher (cmd/eci-runc.c, bin/eci-runc), run by `eci run` the way an engine runs it:
// runc's command line, with the manager's socket in ECI_SOCKET.
import { spawn } from 'node:child_process';
import { nativeFile } from './addon.ts';
import { NativeError, errnoOf } from './errors.ts';

/** Absolute path of native/bin/eci-runc (bin/eci-runc links to it). */
export function launcherPath(): string {
  return nativeFile('./bin/eci-runc');
}

/** Absolute path of native/bin/eci-setkey (Docker's libnetwork-setkey hook, see actors/spec/docker-setkey.ts). */
export function setkeyPath(): string {
  return nativeFile('./bin/eci-setkey');
}

export interface LauncherOptions {
  /** The manager's socket (ECI_SOCKET); the rest of the environment is this process's. */
  socket: string;
  /** Another launcher binary than launcherPath() (e.g. the bin/eci-runc link an engine is given). */
  launcher?: string;
}

function launcherEnv(o: LauncherOptions): NodeJS.ProcessEnv {
  return { ...process.env, ECI_SOCKET: o.socket };
}

/**
 * Runs the launcher to its end with no stdio (e.g. `delete --force ID`), without blocking: the
 * manager's own socket is what the launcher talks to. Rejects with a NativeError when it cannot be
 * run (syscall 'spawn') or exits other than 0 (code ECHILD, syscall 'eci-runc').
 */
export function runLauncher(args: string[], o: LauncherOptions): Promise<void> {
  const bin = o.launcher ?? launcherPath();
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env: launcherEnv(o), stdio: 'ignore' });
    child.once('error', (e) => reject(NativeError.from(Object.assign(e, { syscall: 'spawn' }))));
    child.once('close', (code, sig) => {
      if (code === 0) return resolve();
      const how = sig ? `killed by ${sig}` : `exit ${code}`;
      reject(new NativeError({ code: 'ECHILD', errno: errnoOf('ECHILD'), syscall: 'eci-runc', message: `${bin} ${args.join(' ')}: ${how}`, path: bin }));
    });
  });
}

/** Starts the launcher (e.g. `kill ID KILL`) and forgets it: no stdio, no result. */
export function startLauncher(args: string[], o: LauncherOptions): void {
  const child = spawn(o.launcher ?? launcherPath(), args, { env: launcherEnv(o), stdio: 'ignore' });
  child.on('error', () => {});
}
