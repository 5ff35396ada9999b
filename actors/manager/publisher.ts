// The manager's events go out through the outbox: written to disk before they are published, sent
// in ulid order by one flusher, and kept while the bus is down (sent on reconnect or at next start).
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Bus } from '../../bus/connect.ts';
import { envelope, type OutgoingEvent, type Publish, type PublishMany } from '../../bus/events.ts';
import { Outbox, type OutboxEntry } from '../../bus/outbox.ts';

/** What the actors are given to publish with: each event's data is typed by its type (bus/schemas/v1.ts). */
export interface EventSink {
  publish: Publish;
  publishMany: PublishMany;
}

export class EventPublisher implements EventSink {
  private readonly outbox: Outbox;
  private bus?: Bus;

  constructor(stateDir: string, private readonly log: Logger) {
    this.outbox = new Outbox(join(stateDir, 'outbox'), (e) => this.send(e), log.child({ part: 'outbox' }));
  }

  /** Starts sending on `bus`; returns how many events an earlier run left to send. */
  attach(bus: Bus): number {
    this.bus = bus;
    return this.outbox.load();
  }

  /**
   * Publishes one event through the outbox: resolves once JetStream has it, or once it is kept for
   * later while the bus is down. The ulid is the message id, so a retry is not a duplicate.
   */
  publish: Publish = (subject, type, data) => this.publishMany([{ subject, type, data } as OutgoingEvent]);

  /** Publishes events as one outbox batch (one file; see Outbox.addMany); resolves as publish does. */
  async publishMany(events: OutgoingEvent[]): Promise<void> {
    try {
      await this.outbox.addMany(events.map((ev) => {
        const env = envelope(ev.type, ev.data);
        return { subject: ev.subject, id: env.id, payload: JSON.stringify(env) };
      }));
    } catch (e) {
      this.log.error({ err: e, subject: events[0]?.subject, type: events[0]?.type, events: events.length }, 'cannot publish event');
    }
  }

  /** The bus is back: send what piled up. */
  kick(): void {
    this.outbox.kick();
  }

  close(): Promise<void> {
    return this.outbox.close();
  }

  private async send(e: OutboxEntry): Promise<void> {
    if (!this.bus?.up()) throw new Error('bus disconnected');
    await this.bus.js.publish(e.subject, e.payload, { msgID: e.id, timeout: 2000 });
  }
}
