// Host-backed data dirs of system containers' inner engines (see actors/spec/system-container.ts):
// $ECI_STATE_DIR/inner/<id>/<name>, on the state dir's filesystem (never an overlay), root-owned 0700
// on disk and idmapped into the container like a volume, so its root owns them and what the inner
// engine stores keeps ids 0..65535 on disk. The state dir is 0700: no host user reaches inside.
// Removed when the container is; what a crashed manager left is swept at its next start.
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ID_PATTERN } from '../runc/cli.ts';

export interface InnerDataDir { name: string; path: string; dev: bigint; ino: bigint }

export class InnerData {
  constructor(private readonly stateDir: string) {}

  private root(): string {
    return join(this.stateDir, 'inner');
  }

  dir(id: string): string {
    if (!ID_PATTERN.test(id)) throw new Error(`bad container id ${JSON.stringify(id)}`);
    return join(this.root(), id);
  }

  /** Makes (or reuses: a container re-created under the same id) the named dirs of container `id`. */
  make(id: string, names: readonly string[]): InnerDataDir[] {
    mkdirSync(this.root(), { recursive: true, mode: 0o700 });
    return names.map((name) => {
      const path = join(this.dir(id), name);
      mkdirSync(path, { recursive: true, mode: 0o700 });
      const st = statSync(path, { bigint: true });
      return { name, path, dev: st.dev, ino: st.ino };
    });
  }

  /** Removes container `id`'s dirs and everything its inner engines stored there. */
  remove(id: string): void {
    rmSync(this.dir(id), { recursive: true, force: true });
  }

  /** Removes the dirs of containers not in `keep` (gone while the manager was down); returns their ids. */
  sweep(keep: ReadonlySet<string>): string[] {
    if (!existsSync(this.root())) return [];
    const gone = readdirSync(this.root()).filter((id) => ID_PATTERN.test(id) && !keep.has(id));
    for (const id of gone) this.remove(id);
    return gone;
  }
}
