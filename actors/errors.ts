// User-facing errors: one line, a stable code, an optional hint, the cause kept for --debug.

export class EciError extends Error {
  readonly code: string;
  readonly hint?: string;
  constructor(code: string, message: string, o?: { hint?: string; cause?: unknown }) {
    super(message, o?.cause === undefined ? undefined : { cause: o.cause });
    this.name = 'EciError';
    this.code = code;
    this.hint = o?.hint;
  }
}

export function isEciError(e: unknown): e is EciError {
  return e instanceof EciError;
}

/** One line for the user: the message of an expected error, else a generic one. */
export function oneLine(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.replace(/\s*\n\s*/g, '; ');
}
