// The admin settings in force: loaded at start (a bad file stops the start), then watched; a change
// is published, and a bad file keeps the settings in force and publishes the rejection.
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import type { Logger } from 'pino';
import type { StreamLimits } from '../../bus/connect.ts';
import { subjects } from '../../bus/subjects.ts';
import { EciError } from '../errors.ts';
import { DEFAULT_SETTINGS, parseSettings, type Settings } from '../settings.ts';
import type { EventSink } from './publisher.ts';

/** The event stream's limits from the settings' auditTrail. */
export function auditStreamLimits(s: Settings): StreamLimits {
  return { maxBytes: s.auditTrail.maxBytes, maxAgeS: s.auditTrail.maxAgeDays * 24 * 3600 };
}

export class SettingsWatch {
  private current: Settings = DEFAULT_SETTINGS;
  private text?: string;

  /** `changed`: runs after a new file is in force, before the change is published. */
  constructor(private readonly path: string, private readonly events: EventSink, private readonly log: Logger, private readonly changed?: () => Promise<void>) {}

  settings(): Settings {
    return this.current;
  }

  /** Loads the file (throws on a bad one), then follows its changes. */
  async start(): Promise<void> {
    await this.reload(true);
    watchFile(this.path, { interval: 500 }, () => void this.reload());
  }

  stop(): void {
    unwatchFile(this.path);
  }

  private async reload(initial = false): Promise<void> {
    let text: string | undefined;
    let next: Settings;
    try {
      try {
        text = readFileSync(this.path, 'utf8');
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT') throw new EciError('ESETTINGS', `${this.path}: cannot read (${code})`);
      }
      if (text === this.text && !initial) return;
      this.text = text;
      next = text === undefined ? DEFAULT_SETTINGS : parseSettings(text, this.path);
    } catch (e) {
      if (initial) throw e;
      this.log.error({ path: this.path, err: (e as Error).message }, 'settings rejected; the previous settings stay in force');
      await this.events.publish(subjects.settingsEvent('rejected'), 'settings.rejected', { path: this.path, error: (e as Error).message });
      return;
    }
    this.current = next;
    if (initial) return;
    this.log.info({ path: this.path }, 'settings reloaded');
    await this.changed?.();
    await this.events.publish(subjects.settingsEvent('changed'), 'settings.changed', { path: this.path, settings: next });
  }
}
