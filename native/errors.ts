// NativeError and the parser of eci-helper's one-line JSON result. Shared by index.ts and mock.ts.
import { constants } from 'node:os';

export interface NativeErrorInit {
  code: string;
  errno: number;
  syscall: string;
  message: string;
  path?: string;
  cause?: unknown;
}

/** A failure of native code, shaped like Node's SystemError: `code` 'ENOENT', positive `errno`, `syscall`. */
export class NativeError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  readonly path?: string;

  constructor(init: NativeErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'NativeError';
    this.code = init.code;
    this.errno = init.errno;
    this.syscall = init.syscall;
    if (init.path !== undefined) this.path = init.path;
  }

  /** From the helper's failure object: {"ok":false,"code","errno","syscall","message"}. */
  static fromHelperJSON(line: string): NativeError {
    const parsed = parseHelperOutput(line);
    if (parsed === null) throw new TypeError('helper output reports success, not a failure');
    return parsed;
  }

  /** Wraps an error thrown by the addon (or anything else) without losing code/errno/syscall. */
  static from(err: unknown): NativeError {
    if (err instanceof NativeError) return err;
    const e = (err ?? {}) as { code?: unknown; errno?: unknown; syscall?: unknown; path?: unknown; message?: unknown };
    const code = typeof e.code === 'string' ? e.code : 'UNKNOWN';
    return new NativeError({
      code,
      errno: typeof e.errno === 'number' ? Math.abs(e.errno) : errnoOf(code),
      syscall: typeof e.syscall === 'string' ? e.syscall : '',
      message: typeof e.message === 'string' ? e.message : String(err),
      ...(typeof e.path === 'string' ? { path: e.path } : {}),
      cause: err,
    });
  }
}

/** Positive errno for a code name ('ENOENT' -> 2); EUSAGE (the helper's bad-usage code) -> EINVAL. */
export function errnoOf(code: string): number {
  if (code === 'EUSAGE') return constants.errno.EINVAL;
  const table = constants.errno as Record<string, number | undefined>;
  return table[code] ?? 0;
}

const errnoNames = new Map<number, string>(Object.entries(constants.errno).map(([k, v]) => [v as number, k]));

/** Code name for a positive errno (1 -> 'EPERM'); E<n> for one this platform does not name. */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `E${errno}`;
}

export interface HelperExit {
  /** Exit status, or null when killed by a signal. */
  code: number | null;
  signal?: string | null;
  stderr?: string;
}

function badOutput(what: string, stdout: string, exit?: HelperExit): NativeError {
  const how = exit === undefined ? '' : exit.signal ? ` (killed by ${exit.signal})` : ` (exit ${exit.code})`;
  const stderr = exit?.stderr?.trim().slice(0, 300);
  const shown = stdout.trim().slice(0, 200);
  return new NativeError({
    code: 'EBADMSG',
    errno: constants.errno.EBADMSG,
    syscall: 'eci-helper',
    message: `eci-helper ${what}${how}${shown ? `: ${shown}` : ''}${stderr ? `; stderr: ${stderr}` : ''}`,
  });
}

/**
 * Reads eci-helper's result: its last non-empty stdout line. Returns null on {"ok":true} (with exit 0
 * when the exit is given), the reported failure as a NativeError, or an EBADMSG NativeError when the
 * output does not follow the contract.
 */
export function parseHelperOutput(stdout: string, exit?: HelperExit): NativeError | null {
  const line = stdout.split('\n').map((l) => l.trim()).filter(Boolean).pop();
  if (line === undefined) return badOutput('printed no result', stdout, exit);
  let r: unknown;
  try {
    r = JSON.parse(line);
  } catch {
    return badOutput('printed a result that is not JSON', line, exit);
  }
  if (typeof r !== 'object' || r === null) return badOutput('printed an unexpected result', line, exit);
  const o = r as Record<string, unknown>;
  if (o.ok === true) {
    return exit === undefined || exit.code === 0 ? null : badOutput('reported success but failed', line, exit);
  }
  if (o.ok !== false || typeof o.code !== 'string' || typeof o.message !== 'string')
    return badOutput('printed an unexpected result', line, exit);
  return new NativeError({
    code: o.code,
    errno: typeof o.errno === 'number' && Number.isInteger(o.errno) ? Math.abs(o.errno) : errnoOf(o.code),
    syscall: typeof o.syscall === 'string' ? o.syscall : '',
    message: o.message,
  });
}

/** A call refused before it reaches C (bad path, bad range...): code EUSAGE, errno EINVAL. */
export function usageError(message: string): NativeError {
  return new NativeError({ code: 'EUSAGE', errno: errnoOf('EUSAGE'), syscall: '', message });
}
