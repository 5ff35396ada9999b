// Mock of the native programs run as processes: helpers.ts (eci-helper), fd-holder.ts (eci-fdholder),
// launcher.ts (eci-runc). None runs here: there is never a holder to connect to nor a launcher to start.
import { NativeError, errnoOf, usageError } from '../errors.ts';
import type { FdHolderConnection } from '../fd-holder.ts';
import type { LauncherOptions } from '../launcher.ts';
import { requireAbsolute } from './common.ts';

export function helperPath(): string {
  return '/mock/native/bin/eci-helper';
}

/** No fds to mark in the mock (the real one sets FD_CLOEXEC from fd 3 up). */
export function cloexecInherited(): void {}


// ---------- fd-holder: no holder process in unit tests ----------

export function fdHolderPath(): string {
  return '/nonexistent/eci-fdholder';
}

/** Like starting a holder binary that is not there: nothing comes up. */
export function launchFdHolder(socket: string, pidFile: string): void {
  void socket;
  void pidFile;
}

/** There is never a holder to connect to here: the manager then runs without one (fail closed). */
export function connectFdHolder(path: string): FdHolderConnection {
  requireAbsolute('fd-holder socket', path);
  throw new NativeError({ code: 'ENOENT', errno: errnoOf('ENOENT'), syscall: 'connect', message: `ENOENT: connect ${path}` });
}

export function closeFd(fd: number): void {
  if (!Number.isInteger(fd) || fd < 0) throw usageError(`closeFd needs an fd, got ${fd}`);
}

export function setFdHolderNotes(conn: FdHolderConnection | undefined): void {
  void conn;
}

// ---------- launcher: no eci-runc in unit tests ----------

export function launcherPath(): string {
  return '/mock/native/bin/eci-runc';
}

export function setkeyPath(): string {
  return '/mock/native/bin/eci-setkey';
}

function noLauncher(o: LauncherOptions): NativeError {
  const bin = o.launcher ?? launcherPath();
  return new NativeError({ code: 'ENOENT', errno: errnoOf('ENOENT'), syscall: 'spawn', message: `ENOENT: no launcher in the mock (${bin})`, path: bin });
}

export function runLauncher(args: string[], o: LauncherOptions): Promise<void> {
  void args;
  return Promise.reject(noLauncher(o));
}

/** Fire and forget, as the real one: a launcher that cannot start is not reported. */
export function startLauncher(args: string[], o: LauncherOptions): void {
  void args;
  void o;
}
