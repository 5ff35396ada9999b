// The manager's one NATS connection: external (ECI_NATS_URL) or the embedded server, plus the
// JetStream stream for events and the KV buckets, created if missing.
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import { DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { KV } from '@nats-io/kv';
import { BusError } from './errors.ts';
import { join } from 'node:path';
import { loadOrCreateIdentities, serverConfig, writeObserverCredentials, type BusIdentities } from './auth.ts';
import { isAlive, startEmbedded, type EmbeddedServer } from './embedded.ts';
import { remoteConnectOptions, type RemoteBusAuth } from './remote.ts';
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
  /** Credentials and TLS for an external bus; without them the manager refuses it (unless allowed). */
  auth?: RemoteBusAuth;
  /** Embedded server: where the observer's credentials go for the CLI, and the group that may read them. */
  observer?: { file: string; group: string };
  /** The event stream's limits (and, for the embedded server, JetStream's store ceiling). */
  limits?: StreamLimits;
}

/** The audit trail's bounds: the oldest events go first once either is reached. */
export interface StreamLimits { maxBytes: number; maxAgeS: number }

export const DEFAULT_STREAM_LIMITS: StreamLimits = { maxBytes: 256 * 1024 * 1024, maxAgeS: 30 * 24 * 3600 };
/** JetStream's disk ceiling beyond the event stream: the KV buckets (ranges, records, sysctl). */
export const KV_STORE_ROOM = 256 * 1024 * 1024;
export const MEMORY_STORE = 64 * 1024 * 1024;
export const MAX_CONSUMERS = 1024;
/** No single event is larger (a settings event is a few KiB). */
export const MAX_EVENT_BYTES = 1024 * 1024;

/** Where the manager's and observer's passwords are kept (0600). */
export const identitiesPath = (stateDir: string) => join(stateDir, 'nats-auth.json');

export type BusStatus =
  | { type: 'disconnected' }
  | { type: 'reconnected' }
  | { type: 'server-restarted'; oldPid: number; pid: number }
  | { type: 'server-restart-failed'; error: string }
  | { type: 'warning'; message: string }
  | { type: 'consumers-swept'; names: string[] };

/** How often the embedded nats-server is checked for life. */
const SUPERVISE_MS = 200;

const NS_PER_S = 1_000_000_000;

/** The event stream's config (pure): bounded in bytes and age, the oldest discarded first. */
export function eventsStreamConfig(l: StreamLimits = DEFAULT_STREAM_LIMITS) {
  return {
    name: EVENTS_STREAM,
    subjects: [EVENTS_SUBJECTS],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_bytes: l.maxBytes,
    max_age: l.maxAgeS * NS_PER_S,
    max_msg_size: MAX_EVENT_BYTES,
    discard: DiscardPolicy.Old,
    // Readers' consumers (ephemeral, and stray ones swept): a ceiling for a reader that makes many.
    // Fixed at creation (nats-server cannot change it on an existing stream).
    max_consumers: MAX_CONSUMERS,
    duplicate_window: 120 * NS_PER_S, // republished events (same ulid) within 2 min are dropped
  };
}

/** Creates the stream, or brings an existing one to the limits in force (a stream made before them had none). */
export async function ensureStreams(jsm: JetStreamManager, limits?: StreamLimits): Promise<void> {
  const config = eventsStreamConfig(limits);
  let have;
  try {
    have = (await jsm.streams.info(EVENTS_STREAM)).config;
  } catch {
    await jsm.streams.add(config);
    return;
  }
  if (have.max_bytes !== config.max_bytes || have.max_age !== config.max_age || have.max_msg_size !== config.max_msg_size || have.discard !== config.discard) {
    await jsm.streams.update(EVENTS_STREAM, { ...have, max_bytes: config.max_bytes, max_age: config.max_age, max_msg_size: config.max_msg_size, discard: config.discard });
  }
}

/** eci's readers use ephemeral consumers that expire (ordered consumers: 5 min idle). */
const MAX_CONSUMER_IDLE_S = 10 * 60;
/** How often consumers that would never expire are looked for. */
const SWEEP_MS = 60_000;

/**
 * A consumer on the event stream that would never go away (durable, or no or a long idle limit) is
 * not eci's: the observer may create consumers to read, and this keeps it from piling them up.
 */
export function isStrayConsumer(c: { durable_name?: string; inactive_threshold?: number }): boolean {
  return !!c.durable_name || !c.inactive_threshold || c.inactive_threshold > MAX_CONSUMER_IDLE_S * NS_PER_S;
}

/** Deletes the stray consumers of the event stream; returns their names. */
export async function sweepConsumers(jsm: JetStreamManager): Promise<string[]> {
  const gone: string[] = [];
  for await (const ci of jsm.consumers.list(EVENTS_STREAM)) {
    if (isStrayConsumer(ci.config) && (await jsm.consumers.delete(EVENTS_STREAM, ci.name).catch(() => false))) gone.push(ci.name);
  }
  return gone;
}

/** The embedded server's config for these identities and limits. */
function embeddedConfig(ids: BusIdentities, limits: StreamLimits): (port: number) => string {
  return (port) => serverConfig({ port, ids, maxFileStore: limits.maxBytes + KV_STORE_ROOM, maxMemoryStore: MEMORY_STORE });
}

export async function connectBus(o: BusOptions): Promise<Bus> {
  let server: EmbeddedServer | undefined;
  let url = o.url;
  const limits = o.limits ?? DEFAULT_STREAM_LIMITS;
  let authOptions: Record<string, unknown>;
  let embedded: Parameters<typeof startEmbedded>[0] | undefined;
  if (!url) {
    const { ids, created } = loadOrCreateIdentities(identitiesPath(o.stateDir));
    embedded = { stateDir: o.stateDir, port: o.port, config: embeddedConfig(ids, limits), adopt: !created };
    server = await startEmbedded(embedded);
    embedded.adopt = true; // a restart under supervision runs the config just written
    if (server.warning) o.onStatus?.({ type: 'warning', message: server.warning });
    url = server.url;
    authOptions = { user: ids.manager.user, pass: ids.manager.password };
    if (o.observer) writeObserverCredentials(o.observer.file, ids.observer, o.observer.group);
  } else {
    authOptions = remoteConnectOptions(url, o.auth ?? { allowInsecure: false }, 'manager');
  }
  let nc: NatsConnection;
  try {
    // noAsyncTraces: the client otherwise builds an Error (a stack capture) up front for every
    // request, KV write and JetStream publish, ~1/20 of the manager's CPU per container under load;
    // a failure still rejects with the same error classes, made when it happens.
    nc = await connect({ servers: url, name: o.name ?? 'eci', maxReconnectAttempts: -1, reconnectTimeWait: 250, noAsyncTraces: true, ...authOptions });
  } catch (e) {
    if (server?.started) await server.stop();
    throw new BusError('EBUSDOWN', `cannot connect to NATS at ${url}: ${(e as Error).message}`, { cause: e });
  }
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  await ensureStreams(jsm, limits);
  const kvm = new Kvm(js);
  const ranges = await kvm.create(RANGES_BUCKET, { history: 1, storage: StorageType.File });
  const containers = await kvm.create(CONTAINERS_BUCKET, { history: 1, storage: StorageType.File });
  const sysctl = await kvm.create(SYSCTL_BUCKET, { history: 1, storage: StorageType.File });
  let up = true;
  let closing = false;
  // On our own bus only: on an external one, consumers are its administrator's (a log shipper's durable).
  const sweep = () => void sweepConsumers(jsm).then((names) => { if (names.length) o.onStatus?.({ type: 'consumers-swept', names }); }, () => { /* bus down: next time */ });
  if (server) sweep();
  const sweeper = setInterval(() => { if (up && server) sweep(); }, SWEEP_MS);
  sweeper.unref();
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' && up) { up = false; o.onStatus?.({ type: 'disconnected' }); }
      if (s.type === 'reconnect' && !up) {
        // A server that came back with a fresh store (an external NATS) has lost the stream: make it again.
        await ensureStreams(jsm, limits).catch(() => { /* the flusher retries its publishes anyway */ });
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
      clearInterval(sweeper);
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
    startEmbedded(embedded!).then(
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
