// The manager's one NATS connection: external (ECI_NATS_URL) or the embedded server, plus the
// JetStream stream for events and the KV buckets, created if missing.
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { KV } from '@nats-io/kv';
import { BusError } from './errors.ts';
import { isAlive, startEmbedded, type EmbeddedServer } from './embedded.ts';
import { CONTAINERS_BUCKET, EVENTS_STREAM, EVENTS_SUBJECTS, RANGES_BUCKET, SYSCTL_BUCKET } from './subjects.ts';

export interface Bus {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  ranges: KV;
  containers: KV;
  /** sysctl reconciler: host baselines and per-container values. */
  sysctl: KV;
  url: string;
  server?: EmbeddedServer;
  /** False between a disconnect and the next reconnect: operations that need the bus fail closed. */
  up(): boolean;
  close(o?: { stopServer?: boolean }): Promise<void>;
}

export interface BusOptions {
  /** External NATS; unset means start or adopt the embedded nats-server. */
  url?: string;
  stateDir: string;
  port?: number;
  name?: string;
  /** Connection changes (and embedded-server restarts), for logs and events. */
  onStatus?: (s: BusStatus) => void;
}

export type BusStatus =
  | { type: 'disconnected' }
  | { type: 'reconnected' }
  | { type: 'server-restarted'; oldPid: number; pid: number }
  | { type: 'server-restart-failed'; error: string }
  | { type: 'warning'; message: string };

/** How often the embedded nats-server is checked for life. */
const SUPERVISE_MS = 200;

const NS_PER_S = 1_000_000_000;

export async function ensureStreams(jsm: JetStreamManager): Promise<void> {
  const config = {
    name: EVENTS_STREAM,
    subjects: [EVENTS_SUBJECTS],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: 30 * 24 * 3600 * NS_PER_S, // a month of history for replay
    duplicate_window: 120 * NS_PER_S, // republished events (same ulid) within 2 min are dropped
  };
  try {
    await jsm.streams.info(EVENTS_STREAM);
  } catch {
    await jsm.streams.add(config);
  }
}

export async function connectBus(o: BusOptions): Promise<Bus> {
  let server: EmbeddedServer | undefined;
  let url = o.url;
  if (!url) {
    server = await startEmbedded({ stateDir: o.stateDir, port: o.port });
    if (server.warning) o.onStatus?.({ type: 'warning', message: server.warning });
    url = server.url;
  }
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: url, name: o.name ?? 'eci', maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  } catch (e) {
    if (server?.started) await server.stop();
    throw new BusError('EBUSDOWN', `cannot connect to NATS at ${url}: ${(e as Error).message}`, { cause: e });
  }
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  await ensureStreams(jsm);
  const kvm = new Kvm(js);
  const ranges = await kvm.create(RANGES_BUCKET, { history: 1, storage: StorageType.File });
  const containers = await kvm.create(CONTAINERS_BUCKET, { history: 1, storage: StorageType.File });
  const sysctl = await kvm.create(SYSCTL_BUCKET, { history: 1, storage: StorageType.File });
  let up = true;
  let closing = false;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' && up) { up = false; o.onStatus?.({ type: 'disconnected' }); }
      if (s.type === 'reconnect' && !up) {
        // A server that came back with a fresh store (an external NATS) has lost the stream: make it again.
        await ensureStreams(jsm).catch(() => { /* the flusher retries its publishes anyway */ });
        up = true;
        o.onStatus?.({ type: 'reconnected' });
      }
    }
  })().catch(() => {});
  const bus: Bus = {
    nc, js, jsm, ranges, containers, sysctl, url, server,
    up: () => up && !nc.isClosed(),
    async close(c) {
      closing = true;
      clearInterval(timer);
      await nc.drain().catch(() => nc.close());
      if (c?.stopServer && bus.server) await bus.server.stop();
    },
  };
  // The embedded server is ours to keep alive: if it dies, start it again on the same store (the
  // client reconnects by itself). An external NATS is someone else's to supervise.
  let restarting = false;
  let notBefore = 0;
  const timer = setInterval(() => {
    const cur = bus.server;
    if (!cur || closing || restarting || Date.now() < notBefore || isAlive(cur.pid, o.stateDir)) return;
    restarting = true;
    startEmbedded({ stateDir: o.stateDir, port: o.port }).then(
      (next) => {
        bus.server = next;
        o.onStatus?.({ type: 'server-restarted', oldPid: cur.pid, pid: next.pid });
        if (next.warning) o.onStatus?.({ type: 'warning', message: next.warning });
      },
      (e) => { notBefore = Date.now() + 2000; o.onStatus?.({ type: 'server-restart-failed', error: (e as Error).message }); },
    ).finally(() => { restarting = false; });
  }, SUPERVISE_MS);
  timer.unref();
  return bus;
}
