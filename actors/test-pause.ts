// A test-only hook to make a crash land at an exact point: with ECI_TEST_PAUSE_AT=<point>[:<id>] the
// manager, on reaching that point (for that container), writes <stateDir>/paused-at and waits forever,
// so a test can kill -9 it there; at a `fails` point it throws instead (a failure no test can cause from
// outside). Unset (production), every call is a no-op that resolves at once.
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EciError } from './errors.ts';

/** Named points in create and delete where a crash leaves different debris. */
export const PAUSE_POINTS = [
  'create.after-range', // range recorded in KV; nothing mounted
  'create.after-rootfs', // rootfs mounted; the mount not yet recorded in KV
  'delete.before-unmount', // runc deleted the container; eci's mounts and range still held
  'delete.after-unmount', // mounts gone; the range still held
  'create.before-view', // the rootfs recorded as mounted; its host view (beside runc create) not mounted yet
  'create.after-view', // the host view (beside runc create) mounted; the machine not yet told
  'create.view-fails', // not a pause: the host view's mount fails (the create must fail cleanly)
] as const;
export type PausePoint = (typeof PAUSE_POINTS)[number];

export class TestPause {
  private constructor(private readonly point: PausePoint | undefined, private readonly id: string | undefined, private readonly stateDir: string) {}

  /** Reads ECI_TEST_PAUSE_AT; an unknown point is a configuration error, not silently ignored. */
  static fromEnv(env: NodeJS.ProcessEnv, stateDir: string): TestPause {
    const v = env.ECI_TEST_PAUSE_AT;
    if (!v) return new TestPause(undefined, undefined, stateDir);
    const [point, id] = v.split(':', 2);
    if (!(PAUSE_POINTS as readonly string[]).includes(point)) {
      throw new EciError('ECONFIG', `ECI_TEST_PAUSE_AT=${v}: expected one of ${PAUSE_POINTS.join(', ')}, optionally :<container id>`);
    }
    return new TestPause(point as PausePoint, id || undefined, stateDir);
  }

  get active(): PausePoint | undefined {
    return this.point;
  }

  /** At `point` (when armed): waits for `settle` (writes that must have landed), marks, and never returns. */
  async at(point: PausePoint, id: string, settle?: () => Promise<unknown>): Promise<void> {
    if (this.point !== point || (this.id !== undefined && this.id !== id)) return;
    if (point.endsWith('-fails')) throw new EciError('ETEST', `${point} (ECI_TEST_PAUSE_AT)`);
    await settle?.();
    // Written whole and then renamed: a test polling for the file never reads it half-written.
    const marker = join(this.stateDir, 'paused-at');
    writeFileSync(`${marker}.tmp`, `${point} ${id}\n`);
    renameSync(`${marker}.tmp`, marker);
    await new Promise<never>(() => {});
  }
}
