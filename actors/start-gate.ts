// What must be done to a created container before its process may run (its sysctl views, its
// domainname): done after `create` has answered the engine, awaited by `start`. The engine's own
// work between the two calls then hides it, and `start` still never runs the process before it.
export class StartGate {
  private held = new Map<string, Promise<void>>();

  /** Holds `id`'s start until `work` settles (its failures are its own to report: start goes on). */
  hold(id: string, work: Promise<void>): void {
    const p: Promise<void> = work.catch(() => {}).finally(() => { if (this.held.get(id) === p) this.held.delete(id); });
    this.held.set(id, p);
  }

  /** Resolves once nothing holds `id`'s start. */
  async wait(id: string): Promise<void> {
    await this.held.get(id);
  }

  /** Containers whose start is held (for tests and the debug log). */
  get size(): number {
    return this.held.size;
  }
}
