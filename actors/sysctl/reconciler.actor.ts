// Runs the sysctl machine against the world: /proc/sys for the host values, a KV bucket (SYSCTL_BUCKET)
// for the baselines and the values each container set (so a restarted manager still knows the host's
// own value), NATS request/reply for the FUSE side, and a `sysctl.written` event for every host write.
//
// KV records: `baseline.<key-with-dashes>` -> {key, baseline, written?} (written: the value eci last
// wrote to the host); `container.<id>` -> {values: {key: n}}.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createActor, type Actor } from 'xstate';
import type { Logger } from 'pino';
import { sysctlMachine, type SysctlContext } from '../../statecharts/sysctl.machine.ts';
import { sysctlSubjects } from '../../bus/subjects.ts';
import { sysctlBaselineKeys, sysctlContainerKeys } from '../../bus/keys.ts';
import type { Publish } from '../../bus/events.ts';
import { serve, type ServeConnection } from '../../bus/serve.ts';
import { RECONCILED, ceilingOf, keyByName, SysctlValueError, type SysctlKey } from './keys.ts';

/** The part of a @nats-io/kv KV the reconciler uses. */
export interface SysctlKv {
  get(k: string): Promise<{ operation: string; json<T>(): T } | null>;
  put(k: string, v: string): Promise<unknown>;
  delete(k: string): Promise<unknown>;
  keys(filter?: string): Promise<AsyncIterable<string>>;
}

/** The host's sysctl files. */
export interface SysctlHost {
  read(k: SysctlKey): Promise<number>;
  write(k: SysctlKey, value: number): Promise<void>;
  exists(k: SysctlKey): Promise<boolean>;
}

export function procSysHost(procSys = '/proc/sys'): SysctlHost {
  return {
    async read(k) { return Number((await readFile(join(procSys, k.path), 'utf8')).trim()); },
    async write(k, v) { await writeFile(join(procSys, k.path), `${v}\n`); },
    async exists(k) { return readFile(join(procSys, k.path), 'utf8').then(() => true, () => false); },
  };
}

interface Subscription { unsubscribe(): void }

export interface ReconcilerDeps {
  kv: SysctlKv;
  publish: Publish;
  log: Logger;
  /** Serve sysctlSubjects.set/get on this connection (omit in unit tests). */
  nc?: ServeConnection;
  host?: SysctlHost;
  /** Reconciled entries (default RECONCILED; those absent on this host are skipped). */
  keys?: readonly SysctlKey[];
  /**
   * Whether `container` is a live container of this manager: a set for any other id is refused, so a
   * made-up id can never hold the host value up (omit in unit tests: every id counts as live).
   */
  isLive?(container: string): boolean;
  /** The admin's ceilings (settings sysctlCeilings), read at each set (default DEFAULT_SYSCTL_CEILINGS). */
  ceilings?: () => Readonly<Record<string, number>>;
}

export type SetResult = { ok: true } | { ok: false; code: 'EINVAL' | 'ENOENT' | 'EINTERNAL' | 'EPERM'; reason: string };

const baselineKey = sysctlBaselineKeys.key;
const containerKey = sysctlContainerKeys.key;

export class SysctlReconciler {
  readonly actor: Actor<typeof sysctlMachine>;
  private readonly host: SysctlHost;
  private keys: SysctlKey[] = [];
  private subs: Subscription[] = [];
  /** KV writes, one at a time, in the order the machine asked. */
  private kvChain: Promise<void> = Promise.resolve();
  private started: Promise<void> | undefined;
  private idleWaiters: (() => void)[] = [];

  constructor(private deps: ReconcilerDeps) {
    this.host = deps.host ?? procSysHost();
    const machine = sysctlMachine.provide({
      actions: {
        writeHost: (_, p) => { void this.writeHost(p.key, p.old, p.new, p.cause); },
        saveContainer: (_, p) => this.enqueue(() => this.deps.kv.put(containerKey(p.container), JSON.stringify({ values: p.values }))),
        forgetContainer: (_, p) => this.enqueue(() => this.deps.kv.delete(containerKey(p.container))),
        saveBaseline: (_, p) => { void this.adoptBaseline(p.key, p.old, p.new); },
      },
    });
    this.actor = createActor(machine, { systemId: 'sysctl' });
    this.actor.subscribe((s) => {
      if (s.value === 'ready' && !s.context.pending) for (const f of this.idleWaiters.splice(0)) f();
    });
  }

  /**
   * Loads baselines and container values from KV; a key seen for the first time takes the host's
   * current value as its baseline (and stores it). Then serves the bus. Idempotent.
   */
  start(): Promise<void> {
    this.started ??= this.load();
    return this.started;
  }

  private async load(): Promise<void> {
    this.actor.start();
    for (const k of this.deps.keys ?? RECONCILED) if (await this.host.exists(k)) this.keys.push(k);
    const containers: Record<string, Record<string, number>> = {};
    for await (const name of await this.deps.kv.keys(sysctlContainerKeys.all)) {
      const e = await this.deps.kv.get(name);
      if (e && e.operation === 'PUT') containers[sysctlContainerKeys.rest(name)!] = e.json<{ values: Record<string, number> }>().values ?? {};
    }
    const entries: Record<string, { baseline: number; host: number; containers: Record<string, number> }> = {};
    for (const k of this.keys) {
      const host = await this.host.read(k);
      const e = await this.deps.kv.get(baselineKey(k.key));
      let baseline: number;
      if (e && e.operation === 'PUT') {
        const rec = e.json<{ baseline: number; written?: number }>();
        baseline = rec.baseline;
        // Changed while no manager ran (not the value eci last wrote, or, if it never wrote, not the
        // baseline): that is the baseline now, rather than the stored one coming back over it.
        const last = Number.isSafeInteger(rec.written) ? rec.written : rec.baseline;
        if (last !== host && Number.isSafeInteger(host)) {
          await this.adoptBaseline(k.key, baseline, host);
          baseline = host;
        }
      } else {
        baseline = host;
        await this.deps.kv.put(baselineKey(k.key), JSON.stringify({ key: k.key, baseline }));
      }
      const values: Record<string, number> = {};
      for (const [id, vals] of Object.entries(containers)) if (Number.isSafeInteger(vals[k.key])) values[id] = vals[k.key];
      entries[k.key] = { baseline, host, containers: values };
    }
    this.actor.send({ type: 'restore', entries });
    const nc = this.deps.nc;
    if (nc) {
      this.subs.push(
        serve(nc, { subject: sysctlSubjects.set, handle: (r: { container: string; key: string; value: number }) => this.set(r.container, r.key, r.value) }),
        serve(nc, { subject: sysctlSubjects.get, handle: (r: { container: string; key: string }) => ({ ok: true, value: this.valueOf(r.container, r.key) }) }),
      );
    }
  }

  /** The reconciled keys present on this host. */
  reconciled(): readonly SysctlKey[] {
    return this.keys;
  }

  /** Container `container` sets `key` to `value` (its own view; the host follows the max, up to the ceiling). */
  async set(container: string, key: string, value: number): Promise<SetResult> {
    await this.start();
    const k = keyByName(key, this.keys);
    if (!k) return { ok: false, code: 'ENOENT', reason: `${key} is not reconciled on this host` };
    if (typeof container !== 'string' || container === '') return { ok: false, code: 'EINVAL', reason: 'container: expected a non-empty string' };
    if (this.deps.isLive && !this.deps.isLive(container)) return { ok: false, code: 'EPERM', reason: `container ${container} is not a live container of this manager` };
    if (!Number.isSafeInteger(value) || value < k.min || value > k.max)
      return { ok: false, code: 'EINVAL', reason: new SysctlValueError(`${key}: ${value} is outside ${k.min}..${k.max}`).message };
    // The container keeps its own value (SysctlFs serves it back); the host goes no higher than the ceiling.
    this.actor.send({ type: 'container.set', container, key, value: Math.min(value, ceilingOf(k, this.deps.ceilings?.())) });
    return { ok: true };
  }

  /** The container stopped: its values no longer hold the host up. */
  gone(container: string): void {
    this.actor.send({ type: 'container.gone', container });
  }

  /** After a manager restart: forget every container with values that is not in `live`. */
  retainOnly(live: Iterable<string>): void {
    const keep = new Set(live);
    const all = new Set(Object.values(this.context().entries).flatMap((e) => Object.keys(e.containers)));
    for (const c of all) if (!keep.has(c)) this.gone(c);
  }

  /** The value `container` set for `key` as the host counts it (at most the ceiling), if any. */
  valueOf(container: string, key: string): number | undefined {
    return this.context().entries[key]?.containers[container];
  }

  context(): SysctlContext {
    return this.actor.getSnapshot().context;
  }

  /** Resolves when no host write is pending and every KV write has landed. */
  async settled(): Promise<void> {
    const s = this.actor.getSnapshot();
    if (!(s.value === 'ready' && !s.context.pending)) await new Promise<void>((r) => this.idleWaiters.push(r));
    await this.kvChain;
  }

  stop(): void {
    for (const s of this.subs) s.unsubscribe();
    this.subs = [];
    this.actor.stop();
    for (const f of this.idleWaiters.splice(0)) f();
  }

  /** Persists (in order with the other KV writes) and announces a baseline taken from an outside change. */
  private adoptBaseline(key: string, old: number, value: number): Promise<void> {
    this.enqueue(() => this.deps.kv.put(baselineKey(key), JSON.stringify({ key, baseline: value, written: value })));
    this.deps.log.warn({ key, old, new: value }, 'sysctl: the host value was changed outside eci; it is the new baseline');
    return this.deps.publish(sysctlSubjects.baseline(key), 'sysctl.baseline', { key, old, new: value, container: 'host' })
      .catch((e) => this.deps.log.error({ err: e }, 'sysctl: cannot publish'));
  }

  private enqueue(f: () => Promise<unknown>): void {
    this.kvChain = this.kvChain.then(f).then(() => {}, (e) => this.deps.log.error({ err: e }, 'sysctl: KV write failed'));
  }

  private async writeHost(key: string, old: number, value: number, cause: string): Promise<void> {
    const k = keyByName(key, this.keys)!;
    try {
      // Someone else changed the host since we last wrote or read it: that is the new baseline.
      const now = await this.host.read(k);
      if (Number.isSafeInteger(now) && now !== old) {
        this.actor.send({ type: 'host.changed', key, value: now });
        return;
      }
      await this.host.write(k, value);
    } catch (e) {
      this.deps.log.error({ err: e, key, value }, 'sysctl: host write failed');
      this.actor.send({ type: 'host.failed', key, reason: (e as Error).message });
      return;
    }
    this.deps.log.info({ key, old, new: value, container: cause }, 'sysctl: host value written');
    // What eci last wrote, so that a restarted manager can tell an admin's change from its own.
    const baseline = this.context().entries[key]?.baseline;
    if (baseline !== undefined) this.enqueue(() => this.deps.kv.put(baselineKey(key), JSON.stringify({ key, baseline, written: value })));
    await this.deps.publish(sysctlSubjects.written(key), 'sysctl.written', { key, old, new: value, container: cause })
      .catch((e) => this.deps.log.error({ err: e }, 'sysctl: cannot publish'));
    this.actor.send({ type: 'host.written', key, value });
  }
}
