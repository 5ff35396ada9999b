// What the mock's areas share: injected failures and the argument checks the real calls make.
import { NativeError, errnoOf, usageError } from '../errors.ts';

export interface MockFailure {
  code: string;
  errno?: number;
  syscall?: string;
  message?: string;
  /** How many calls fail (default 1). */
  times?: number;
}

/** Takes the first failure of `list` (counting its times down) as a NativeError of call `fn`. */
export function takeFailure(list: MockFailure[] | undefined, fn: string, syscall: string): NativeError | undefined {
  const f = list?.[0];
  if (!f) return undefined;
  f.times = (f.times ?? 1) - 1;
  if (f.times <= 0) list!.shift();
  return new NativeError({
    code: f.code,
    errno: f.errno ?? errnoOf(f.code),
    syscall: f.syscall ?? syscall,
    message: f.message ?? `${f.code}: injected failure of ${fn}`,
  });
}

export function requireAbsolute(what: string, p: string): void {
  if (!p.startsWith('/')) throw usageError(`--${what} must be an absolute path, got ${p}`);
}
