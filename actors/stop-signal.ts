// A container's stop signal when the engine's SIGTERM would not stop it: systemd as PID 1 re-executes
// itself on SIGTERM (systemd(1)) and halts on SIGRTMIN+3, so a plain `docker stop` would end only at
// the SIGKILL after the timeout. Engines send the stop signal with `runc kill <id> [SIGTERM]`, a verb
// the launcher hands to runc without asking the manager; so the manager leaves the signal in a file
// of runc's state dir (removed with it by `runc delete`) and the launcher (native/cmd/eci-runc.c)
// sends that signal instead of SIGTERM. Other signals (docker kill -s KILL, ...) pass unchanged.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The file's name in runc's state dir <root>/<id>/; the launcher reads the same name. */
export const STOP_SIGNAL_FILE = 'eci-stop-signal';

export function writeStopSignal(runcStateDir: string, signal: number): void {
  writeFileSync(join(runcStateDir, STOP_SIGNAL_FILE), `${signal}\n`, { mode: 0o644 });
}
