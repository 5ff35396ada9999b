// The bus's identities and permissions (bus/auth.ts), the external-bus rule (bus/remote.ts) and the
// event stream's bounds (bus/connect.ts), as pure functions.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadOrCreateIdentities, observerPermissions, OBSERVER_INBOX, readCredentials, serverConfig, type BusIdentities } from '../../bus/auth.ts';
import { DEFAULT_STREAM_LIMITS, eventsStreamConfig, isStrayConsumer, MAX_CONSUMERS } from '../../bus/connect.ts';
import { isLoopback, remoteBusGaps, remoteConnectOptions } from '../../bus/remote.ts';

const dir = mkdtempSync(join(tmpdir(), 'eci-auth-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ids: BusIdentities = { manager: { user: 'manager', password: 'M'.repeat(32) }, observer: { user: 'observer', password: 'O'.repeat(32) } };

describe('embedded server config', () => {
  it('listens on loopback only, bounds JetStream, and names both identities', () => {
    const c = serverConfig({ port: 14222, ids, maxFileStore: 512 * 1024 * 1024, maxMemoryStore: 64 * 1024 * 1024 });
    expect(c).toContain('listen: "127.0.0.1:14222"');
    expect(c).toContain('max_file_store: 536870912');
    expect(c).toContain('max_memory_store: 67108864');
    expect(c).toContain(`{ user: "manager", password: "${'M'.repeat(32)}", permissions: { publish: ">", subscribe: ">" } }`);
    expect(c).toContain(`user: "observer", password: "${'O'.repeat(32)}"`);
    expect(c).not.toMatch(/no_auth_user|authorization\s*{\s*}/);
  });

  it('lets the observer read events and ask $SRV, and nothing that changes state', () => {
    const p = observerPermissions();
    expect(p.subscribe).toEqual(['eci.v1.evt.>', `${OBSERVER_INBOX}.>`]);
    expect(p.publish).toContain('$SRV.>');
    for (const s of p.publish) {
      expect(s).not.toMatch(/PURGE|DELETE|UPDATE|MSG\.DELETE|^eci\.|^_INBOX|^>$|\$JS\.API\.>/);
    }
    // Everything it may publish to is on the JetStream API of ECI_EVENTS only, or $SRV.
    expect(p.publish.every((s) => s.startsWith('$SRV.') || /^\$JS\.API\.(CONSUMER\.(CREATE|MSG\.NEXT)|STREAM\.INFO)\.ECI_EVENTS(\.>)?$/.test(s))).toBe(true);
  });

  it('makes the identities once (0600) and keeps them; a damaged file gets new ones', () => {
    const path = join(dir, 'nats-auth.json');
    const a = loadOrCreateIdentities(path);
    expect(a.created).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(a.ids.manager.password).not.toBe(a.ids.observer.password);
    expect(a.ids.manager.password).toMatch(/^[A-Za-z0-9_-]{32}$/);
    const b = loadOrCreateIdentities(path);
    expect(b).toEqual({ ids: a.ids, created: false });
    writeFileSync(path, '{"manager": {"user": "manager", "password": ""}}');
    const c = loadOrCreateIdentities(path);
    expect(c.created).toBe(true);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual(c.ids);
  });

  it('reads a credentials file, or says in one line why not', () => {
    const path = join(dir, 'observer.json');
    writeFileSync(path, JSON.stringify(ids.observer));
    expect(readCredentials(path)).toEqual(ids.observer);
    expect(() => readCredentials(join(dir, 'none.json'))).toThrow(/cannot read the bus credentials .*none\.json \(ENOENT\)/);
    writeFileSync(path, 'nope');
    expect(() => readCredentials(path)).toThrow(/expected JSON \{"user"/);
  });
});

describe('external bus', () => {
  const none = { allowInsecure: false };
  it('knows loopback URLs', () => {
    expect(isLoopback('nats://127.0.0.1:4222')).toBe(true);
    expect(isLoopback('localhost:4222')).toBe(true);
    expect(isLoopback('nats://[::1]:4222')).toBe(true);
    expect(isLoopback('nats://127.0.0.1:4222,nats://10.0.0.2:4222')).toBe(false);
    expect(isLoopback('nats://nats.example.com:4222')).toBe(false);
  });

  it('needs credentials always, and TLS off this host', () => {
    expect(remoteBusGaps('nats://127.0.0.1:4222', none)).toEqual([expect.stringMatching(/^no credentials/)]);
    expect(remoteBusGaps('nats://127.0.0.1:4222', { ...none, user: 'u', password: 'p' })).toEqual([]);
    expect(remoteBusGaps('nats://10.0.0.2:4222', { ...none, user: 'u', password: 'p' })).toEqual([expect.stringMatching(/^no TLS/)]);
    expect(remoteBusGaps('tls://10.0.0.2:4222', { ...none, user: 'u', password: 'p' })).toEqual([]);
    expect(remoteBusGaps('nats://10.0.0.2:4222', { ...none, credsFile: '/x', tlsCa: '/ca.pem' })).toEqual([]);
  });

  it('the manager refuses a gap in one line unless allowed; the CLI just connects', () => {
    expect(() => remoteConnectOptions('nats://10.0.0.2:4222', none, 'manager'))
      .toThrow(/^refusing the bus at nats:\/\/10\.0\.0\.2:4222: no credentials .*; no TLS .*; set ECI_NATS_ALLOW_INSECURE=1 to run on it anyway$/);
    expect(remoteConnectOptions('nats://10.0.0.2:4222', { allowInsecure: true }, 'manager')).toEqual({});
    expect(remoteConnectOptions('nats://10.0.0.2:4222', none, 'cli')).toEqual({});
    expect(remoteConnectOptions('nats://10.0.0.2:4222', { ...none, user: 'u', password: 'p', tlsCa: '/ca.pem' }, 'manager'))
      .toEqual({ user: 'u', pass: 'p', tls: { caFile: '/ca.pem' } });
    const creds = join(dir, 'remote.json');
    writeFileSync(creds, JSON.stringify({ user: 'r', password: 's' }));
    expect(remoteConnectOptions('nats://127.0.0.1:4222', { ...none, credsFile: creds }, 'manager')).toEqual({ user: 'r', pass: 's' });
  });
});

describe('event stream bounds', () => {
  it('has byte, age and message-size limits and drops the oldest first', () => {
    const c = eventsStreamConfig({ maxBytes: 1024 * 1024, maxAgeS: 3600 });
    expect(c).toMatchObject({ max_bytes: 1024 * 1024, max_age: 3600 * 1e9, max_msg_size: 1024 * 1024, discard: 'old', retention: 'limits' });
    expect(eventsStreamConfig().max_bytes).toBe(DEFAULT_STREAM_LIMITS.maxBytes);
    expect(eventsStreamConfig().max_consumers).toBe(MAX_CONSUMERS);
  });

  it('calls a consumer stray when it would never expire', () => {
    expect(isStrayConsumer({ inactive_threshold: 5 * 60 * 1e9 })).toBe(false); // nats.js ordered consumer
    expect(isStrayConsumer({ durable_name: 'x', inactive_threshold: 5 * 60 * 1e9 })).toBe(true);
    expect(isStrayConsumer({})).toBe(true);
    expect(isStrayConsumer({ inactive_threshold: 3600 * 1e9 })).toBe(true);
  });
});
