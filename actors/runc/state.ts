// What eci reads of runc's state.json (<root>/<id>/state.json, runc's libcontainer State).
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { runcStateDir } from './cli.ts';

/** How much of the file initPidOf reads first: the pid is among its first fields. */
const HEAD_BYTES = 4096;

/**
 * The init pid in state.json's text `head` (a prefix of it), or undefined when it is not there.
 * runc writes its State struct's fields in order (id, init_process_pid, ..., then the whole config),
 * so the first `"init_process_pid":` key is the top-level one: a quote inside a JSON string is
 * always escaped, and the config (with the seccomp profile, tens of KiB) comes after it.
 */
export function initPidInHead(head: string): number | undefined {
  const m = /"init_process_pid":\s*(\d+)\s*[,}]/.exec(head);
  if (!m) return undefined;
  const pid = Number(m[1]);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * A container's init pid from runc's state.json (undefined: unknown). Reads only the file's head, not
 * the whole file through JSON.parse (a cost on every create's answer); the whole file when the
 * head does not say.
 */
export function runcInitPid(root: string | undefined, id: string): number | undefined {
  const path = join(runcStateDir(root, id), 'state.json');
  try {
    const fd = openSync(path, 'r');
    let head: string;
    try {
      const buf = Buffer.alloc(HEAD_BYTES);
      head = buf.toString('utf8', 0, readSync(fd, buf, 0, HEAD_BYTES, 0));
    } finally {
      closeSync(fd);
    }
    const pid = initPidInHead(head);
    if (pid !== undefined) return pid;
    const whole = (JSON.parse(readFileSync(path, 'utf8')) as { init_process_pid?: unknown }).init_process_pid;
    return typeof whole === 'number' && Number.isSafeInteger(whole) && whole > 0 ? whole : undefined;
  } catch {
    return undefined;
  }
}
