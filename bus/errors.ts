// Errors the bus layer raises. Each has a stable `code` for callers and the CLI.

export type BusErrorCode = 'EBUSDOWN' | 'EBUSSERVER' | 'EBUSTIMEOUT' | 'EBUSAUTH' | 'EBUSINSECURE';

export class BusError extends Error {
  constructor(readonly code: BusErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BusError';
  }
}
