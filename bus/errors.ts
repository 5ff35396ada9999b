// Errors the bus layer raises. Each has a stable `code` for callers and the CLI.

export class BusError extends Error {
  constructor(readonly code: 'EBUSDOWN' | 'EBUSSERVER' | 'EBUSTIMEOUT', message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BusError';
  }
}
