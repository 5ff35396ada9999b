// Feeds seccomp notifications from runc's containers to the vetter over the bus and carries out
// the verdict: performs the call in the container (eci-helper mount-as/umount-as/chmod-as), answers the
// kernel (or lets the container's performer answer a mount/umount it ran, which saves the caller a
// hop back through this event loop), and publishes an audit event (in batches). Fails closed: no
// verdict in time means EPERM; an error while performing means the caller gets an errno, never "allowed".
import { readFileSync, readlinkSync } from 'node:fs';
import type { Logger } from 'pino';
import type { NatsConnection } from '@nats-io/transport-node';
import { subjects } from '../bus/subjects.ts';
import type { OutgoingEvent, Publish, PublishMany } from '../bus/events.ts';
import type { VetterDecisionData } from '../bus/schemas/v1.ts';
import { fromWire, RATE_BURST, RATE_PER_SECOND, toWire } from './vetter.actor.ts';
import { decide, type Verdict, type VetRequest } from './vetter/decide.ts';
import { lookup, performerOf, type PerformNative } from './vetter/registry.ts';
import type { Protection } from './vetter/types.ts';
import { callerAbsolutePath } from './vetter/caller-path.ts';
import { mountAt, parseMountInfo } from './mountinfo.ts';
import { answeredOf, FastFallbackError, type AsNotify, type AsOutcome } from '../native/seccomp-agent.ts';
import { compileFastTable, FAST_RULES, matchFast, type FastTable } from './vetter/fast-path.ts';
import { errnoName } from '../native/errors.ts';
import { AuditCoalescer, type CoalesceLimits, type Decision } from './audit-coalescer.ts';

export const VET_TIMEOUT_MS = 2000;
/**
 * Audit events of vetted calls are gathered this long and published as one batch: publishing one
 * alone (an outbox file and a JetStream round trip) took ~300 us of the manager's main thread,
 * which the next call of a burst waited for (measured: bench mountlat).
 */
export const AUDIT_BATCH_MS = 5;

/** The agent socket and notify fds, plus the performers of the registry's ops (mountAs, umountAs, chmodAs). */
export interface FeedNative extends PerformNative {
  serveSeccompAgent(path: string, onConnection: (c: { state: unknown; notifyFd: number | null; error?: string }) => void): { close(): Promise<void> };
  listenSeccomp(fd: number, o?: { holderTag?: string; fastPath?: boolean }): AsyncIterable<FeedNotif> & {
    respond(id: bigint, r: { kind: 'continue' } | { kind: 'errno'; errno: number } | { kind: 'value'; val: number }): Promise<void>;
    idValid?(id: bigint): boolean;
    close(): Promise<void>;
    readonly fd: number;
    /** The native fast path (native/seccomp-agent.ts SeccompListener): absent in backends without one. */
    fastPath?(t: FastTable): boolean;
    fastOutcome?(n: { fastId: number; fastGen?: number }): Promise<AsOutcome>;
    fastCharge?(): void;
  };
}

export interface FeedHost {
  log: Logger;
  nc: NatsConnection;
  publish: Publish;
  /** Publishes events as one batch (one outbox file, sent together); without it, one publish each. */
  publishMany?: PublishMany;
  /** How many decisions per container and second are audited one by one (the rest are counted). */
  auditLimits?(): CoalesceLimits;
  /**
   * runc handed over a notify fd for `container` (the caller keeps it: take a copy now, e.g. for the
   * fd-holder, before the feed starts watching it).
   */
  notifyFdReceived?(container: string, fd: number): void;
  /** Container-relative paths of the mounts eci manages for a container (volumes, masked, read-only). */
  protectedPaths(container: string): string[] | undefined;
  /**
   * Container-relative paths of its volumes (host directories shared into it), a subset of
   * protectedPaths: setuid/setgid modes are refused there. undefined: not known (e.g. a container
   * from before a manager restart), and then every setuid/setgid chmod of the container is refused.
   */
  volumePaths?(container: string): string[] | undefined;
  /** runc's connection for a container process (the init during create): its host pid. */
  containerProcess?(container: string, pid: number): void;
  /** Container `container`'s emulated /proc files (dir and names), when /proc emulation runs. */
  emulatedProcFiles?(container: string): { dir: string; files: readonly string[] } | undefined;
  /** Container `container`'s emulated /proc/sys and /sys files for a new mount of `fstype` (source, path relative to the mount). */
  emulatedMountFiles?(fstype: string, container: string): { source: string; rel: string }[];
  /** bindInto for many files in one go (a target missing in the container is skipped). */
  bindIntoMany?(pid: number, pairs: readonly { source: string; target: string }[]): Promise<void>;
  /** Puts a host mount over a path inside the container of `pid`. */
  bindInto?(pid: number, source: string, target: string): Promise<void>;
  /**
   * A fast-path call of the container (judged and performed natively, within the same budget): the
   * vetter actor counts it against the container's pacing budget, so that calls past the budget on
   * the actor's path wait as before.
   */
  charge?(container: string): void;
  /**
   * The vetter actor of this process, when it runs here: asked directly (its rate limits and the pure
   * decide() are the same as on the bus), which saves a NATS round trip per call. Without it the
   * feed asks over the bus (eci.v1.vetter.decide.<id>).
   */
  vet?(req: VetRequest): Verdict | Promise<Verdict>;
  /** The container's id ranges. */
  ranges(container: string): { uid?: VetRequest['uid']; gid?: VetRequest['gid'] };
}

/** One notification as the feed gets it (native/seccomp-agent.ts SeccompNotif). */
export interface FeedNotif {
  id: bigint; pid: number; syscall: string; args: bigint[]; strings: Record<string, string | null>;
  stringIssues?: Record<string, string>; mountAttr?: VetRequest['mountAttr']; recvUs?: number; readUs?: number;
  /** Sent to the performer by the native fast path already (see fastPath). */
  fastId?: number; fastGen?: number; fastRule?: string;
}

interface ProcessState { pid?: number; metadata?: string; state?: { id?: string; pid?: number } }

export class NotifyFeed {
  private server?: { close(): Promise<void> };
  /** Open listeners and their container. */
  private listeners = new Map<{ close(): Promise<void>; readonly fd: number }, string>();
  private protectIds = new Map<string, Protection>();
  /** The fast path's table of each container, compiled once its protection is known. */
  private fastTables = new Map<string, FastTable>();
  private auditQueue: Extract<OutgoingEvent, { type: 'vetter.decision' | 'vetter.decisions-coalesced' }>[] = [];
  private auditTimer?: ReturnType<typeof setTimeout>;
  private readonly coalescer: AuditCoalescer;
  private summaryTimer?: ReturnType<typeof setTimeout>;

  constructor(private host: FeedHost, private native: FeedNative) {
    this.coalescer = new AuditCoalescer(host.auditLimits);
  }

  start(socket: string): void {
    this.server = this.native.serveSeccompAgent(socket, (c) => this.onConnection(c));
  }

  async stop(): Promise<void> {
    await this.server?.close();
    for (const l of this.listeners.keys()) await l.close().catch(() => {});
    clearTimeout(this.summaryTimer);
    this.queueSummaries(Infinity);
    await this.flushAudit();
  }

  /**
   * One audit event (vetter.decision), published with the others of its batch, unless the container
   * is over its share: then it is counted into a vetter.decisions-coalesced event (audit-coalescer.ts).
   */
  private audit(container: string, data: VetterDecisionData): void {
    if (!this.coalescer.offer(data, Date.now())) {
      const at = this.coalescer.nextDue();
      if (at !== undefined) this.summaryTimer ??= setTimeout(() => { this.summaryTimer = undefined; this.queueSummaries(Date.now()); }, Math.max(0, at - Date.now()));
      return;
    }
    this.auditQueue.push({ subject: subjects.vetterEvent(container), type: 'vetter.decision', data });
    this.auditTimer ??= setTimeout(() => void this.flushAudit(), AUDIT_BATCH_MS);
  }

  /** Queues the summaries of the windows that ended, and waits for the next one that counted something. */
  private queueSummaries(now: number): void {
    for (const s of this.coalescer.due(now)) this.auditQueue.push({ subject: subjects.vetterCoalesced(s.container), type: 'vetter.decisions-coalesced', data: s });
    if (this.auditQueue.length) this.auditTimer ??= setTimeout(() => void this.flushAudit(), AUDIT_BATCH_MS);
    const at = now === Infinity ? undefined : this.coalescer.nextDue();
    if (at !== undefined) this.summaryTimer ??= setTimeout(() => { this.summaryTimer = undefined; this.queueSummaries(Date.now()); }, Math.max(0, at - Date.now()));
  }

  /** Publishes the audit events gathered so far (resolves once kept or acknowledged). */
  flushAudit(): Promise<void> {
    clearTimeout(this.auditTimer);
    this.auditTimer = undefined;
    const batch = this.auditQueue.splice(0);
    if (!batch.length) return Promise.resolve();
    if (this.host.publishMany) return this.host.publishMany(batch);
    return Promise.all(batch.map((e) => this.host.publish(e.subject, e.type, e.data))).then(() => {});
  }

  forget(container: string): void {
    this.protectIds.delete(container);
    this.fastTables.delete(container);
    this.coalescer.forget(container);
    this.queueSummaries(Date.now());
  }

  private onConnection(c: { state: unknown; notifyFd: number | null; error?: string }): void {
    const st = (c.state ?? {}) as ProcessState;
    const container = st.metadata || st.state?.id;
    if (c.error || c.notifyFd === null || !container) {
      this.host.log.warn({ error: c.error ?? 'no container id', container }, 'refused a seccomp agent connection');
      return;
    }
    const initPid = st.state?.pid ?? st.pid ?? 0;
    if (initPid > 0 && (st.state as { status?: string } | undefined)?.status !== 'running') this.host.containerProcess?.(container, initPid);
    this.host.notifyFdReceived?.(container, c.notifyFd);
    this.attach(container, initPid, c.notifyFd);
  }

  /**
   * Resumes vetting a running container from a notify fd kept across a manager restart (the
   * fd-holder's copy): the notifications queued meanwhile are answered first. `initPid` is the
   * container's init (its mount table says what was read-only at start). `seen`: ids the previous
   * manager received; those still waiting were never answered (it died deciding) and the kernel
   * will not queue them again, so they are refused with EPERM (their arguments are gone: fail
   * closed) and audited. Takes ownership of fd.
   */
  adopt(container: string, initPid: number, fd: number, seen: bigint[] = []): void {
    const l = this.attach(container, initPid, fd);
    for (const id of seen) {
      let waiting = false;
      try { waiting = l.idValid?.(id) ?? false; } catch { /* answered, or not this fd's */ }
      if (!waiting) continue;
      const reason = 'received by a manager that died before answering: refused (its arguments are gone)';
      void l.respond(id, { kind: 'errno', errno: 1 }).catch(() => {});
      this.audit(container, {
        container, pid: 0, syscall: 'unknown', strings: {}, verdict: 'refused', errno: 'EPERM', reason, latencyUs: 0,
      });
      this.host.log.warn({ container, id: id.toString() }, reason);
    }
  }

  /** The notify fds being watched, by container (e.g. to hand them to a new fd-holder). */
  watched(): { container: string; fd: number }[] {
    return [...this.listeners].map(([l, container]) => ({ container, fd: l.fd })).filter((x) => x.fd >= 0);
  }

  private attach(container: string, initPid: number, fd: number): ReturnType<FeedNative['listenSeccomp']> {
    const listener = this.native.listenSeccomp(fd, { holderTag: container, fastPath: true });
    this.listeners.set(listener, container);
    (async () => {
      for await (const n of listener) {
        this.handle(container, initPid, listener, n).catch((e) => {
          // A bug must not let a call through: refuse it.
          this.host.log.error({ err: e, container, syscall: n.syscall }, 'vetting failed; refusing the call');
          void listener.respond(n.id, { kind: 'errno', errno: 1 }).catch(() => {});
        });
      }
    })().catch((e) => this.host.log.error({ err: e, container }, 'seccomp feed failed')).finally(() => this.listeners.delete(listener));
    return listener;
  }

  /**
   * What the container must never undo, read once from its init's mount table (by the first vetted
   * call, after runc finished mounting): the mount ids of eci-managed mounts, and the devices of
   * every mount that was read-only at start (:ro volumes, a read-only rootfs, the engine's ro paths).
   */
  private protection(container: string, initPid: number): Protection {
    const cached = this.protectIds.get(container);
    if (cached) return cached;
    const paths = this.host.protectedPaths(container) ?? [];
    const volumePaths = this.host.volumePaths?.(container);
    let p: Protection = { ids: [], roDevs: [], volumes: null };
    try {
      const mounts = parseMountInfo(readFileSync(`/proc/${initPid}/mountinfo`, 'utf8'));
      const volumes = volumePaths?.map((x) => mountAt(mounts, x)).filter((m) => m !== undefined);
      p = {
        ids: paths.map((x) => mountAt(mounts, x)?.id).filter((x): x is number => x !== undefined),
        roDevs: [...new Set(mounts.filter((m) => m.options.split(',').includes('ro')).map((m) => m.dev))],
        // The device too: a bind of a volume made in the container is another mount of the same filesystem.
        volumes: volumes ? { ids: volumes.map((m) => m.id), devs: [...new Set(volumes.map((m) => m.dev))] } : null,
      };
    } catch {
      /* the init is gone: nothing left to protect */
    }
    this.protectIds.set(container, p);
    return p;
  }

  /**
   * A proc filesystem the container mounts itself gets eci's emulated files too (the same binds as
   * its /proc), in the same one helper run as its /proc/sys files (see emulateOnNewMount).
   */
  private emulatedProcPairs(container: string): { source: string; rel: string }[] {
    const files = this.host.emulatedProcFiles?.(container);
    return files ? files.files.map((f) => ({ source: `${files.dir}/${f}`, rel: f })) : [];
  }

  /**
   * The emulated files on a proc or sysfs mount the container made itself (the same files as at its
   * /proc, /proc/sys and /sys), in one helper run. Best effort: the mount has been made; a file that
   * cannot be covered stays the kernel's.
   */
  private async emulateOnNewMount(container: string, pid: number, fstype: string, target: string): Promise<void> {
    const files = [...(fstype === 'proc' ? this.emulatedProcPairs(container) : []), ...(this.host.emulatedMountFiles?.(fstype, container) ?? [])];
    if (!files.length || !(this.host.bindInto || this.host.bindIntoMany)) return;
    const abs = callerAbsolutePath(target, pid, readlinkSync);
    if (abs === undefined) return;
    const pairs = files.map((f) => ({ source: f.source, target: `${abs.replace(/\/$/, '')}/${f.rel}` }));
    if (this.host.bindIntoMany) {
      await this.host.bindIntoMany(pid, pairs).catch((e) =>
        this.host.log.warn({ container, target: abs, err: (e as Error).message }, `emulated files not (all) put on a new ${fstype} mount`));
      return;
    }
    if (!this.host.bindInto) return;
    for (const f of files) {
      await this.host.bindInto(pid, f.source, `${abs.replace(/\/$/, '')}/${f.rel}`).catch((e) =>
        this.host.log.warn({ container, target: abs, file: f.rel, err: (e as Error).message }, `emulated file not put on a new ${fstype} mount`));
    }
  }

  private async handle(
    container: string,
    initPid: number,
    l: ReturnType<FeedNative['listenSeccomp']>,
    n: FeedNotif,
  ): Promise<void> {
    const t0 = performance.now();
    const nowUs = Number(process.hrtime.bigint() / 1000n); // the clock of the native recvUs/readUs
    const native = n.recvUs && n.readUs ? { inspect: Math.round(n.readUs - n.recvUs), queue: Math.max(0, Math.round(nowUs - n.readUs)) } : {};
    const req: VetRequest = { container, pid: n.pid, syscall: n.syscall, args: n.args, strings: n.strings, mountAttr: n.mountAttr, ...this.host.ranges(container) };
    // Sent to the performer by the watcher thread already (the fast path): here only its outcome is awaited and audited.
    const fastRun = n.fastId !== undefined ? (l.fastOutcome?.({ fastId: n.fastId, fastGen: n.fastGen }) ?? Promise.reject(new Error('fast-path run without a fast path'))) : undefined;
    let verdict: Verdict;
    if (fastRun) {
      this.host.charge?.(container);
      verdict = this.fastVerdict(container, req, n);
    } else {
      l.fastCharge?.(); // one budget for both paths: the fast path's counts this call too
      try {
        if (this.host.vet) verdict = await this.host.vet(req);
        else verdict = fromWire<Verdict>((await this.host.nc.request(subjects.vetterDecide(container), toWire(req), { timeout: VET_TIMEOUT_MS })).string());
      } catch (e) {
        verdict = { kind: 'errno', errno: 1, code: 'EPERM', reason: `no verdict from the vetter (${(e as Error).message})` };
      }
    }
    const t1 = performance.now();
    let result: { errno: number; code: string } | { val: number } | 'continue';
    // Set when the performer answered the caller itself (the manager then only records it).
    let answered: AsOutcome['answered'];
    if (verdict.kind === 'perform') {
      const p = verdict.perform;
      const performer = performerOf(p);
      // A new proc/sysfs mount gets eci's files before the caller returns: the manager answers that one.
      const emulates = performer.emulates?.(p);
      const notify: AsNotify = { fd: l.fd, id: n.id, answer: !emulates };
      try {
        answered = (await (fastRun ?? performer.run(this.native, p, { pid: n.pid, notify, protection: this.protection(container, initPid) })))?.answered;
        result = { val: 0 };
        if (emulates) await this.emulateOnNewMount(container, n.pid, emulates.fstype, emulates.target);
        if (!fastRun) this.pushFastPath(container, initPid, l, p.op);
      } catch (e) {
        // The performer ran nothing for a fast-path request (no spare): the caller still waits; the actor's path takes it.
        if (fastRun && e instanceof FastFallbackError) return this.handle(container, initPid, l, { ...n, fastId: undefined });
        const err = e as { code?: string; errno?: number; syscall?: string; message?: string };
        answered = answeredOf(e);
        // The call itself failed: its errno is the answer. Anything else: refuse. (The performer answers by the same rule.)
        const mine = err.syscall !== undefined && performer.syscalls.includes(err.syscall);
        result = { errno: mine && err.errno ? err.errno : 1, code: mine && err.code ? err.code : 'EPERM' };
        if (answered && answered.errno !== result.errno) result = answered.errno ? { errno: answered.errno, code: errnoName(answered.errno) } : { val: 0 };
        // What the caller got is what happened: a performer that answered 0 and then reported a
        // failure (of something after the call) performed it; the failure goes into the reason.
        if ('val' in result) verdict = { ...verdict, reason: `${verdict.reason}; after answering: ${err.message}` };
        else if (!mine) verdict = { ...verdict, reason: `${verdict.reason}; could not perform it: ${err.message}` };
        else if (err.errno === 1) verdict = { ...verdict, reason: err.message ?? verdict.reason };
      }
    } else if (verdict.kind === 'errno') {
      result = { errno: verdict.errno, code: verdict.code };
    } else {
      result = 'continue';
    }
    const response = result === 'continue' ? { kind: 'continue' as const } : 'val' in result ? { kind: 'value' as const, val: result.val } : { kind: 'errno' as const, errno: result.errno };
    const t2 = performance.now();
    if (!answered) await l.respond(n.id, response).catch(() => { /* the caller left the syscall (signal, exit): nothing to answer */ });
    const t3 = performance.now();
    // Where the time went: getting the verdict, carrying it out, answering the kernel. Answered by the
    // performer: perform ends at its answer, and `after` (the hop back here) is not the caller's time.
    const answeredMs = answered ? answered.atUs / 1000 - nowUs / 1000 + t0 : undefined;
    let latencyUs = Math.round(((answeredMs ?? t3) - t0) * 1000);
    let spansUs: VetterDecisionData['spansUs'] = answeredMs !== undefined
      ? { ...native, decide: Math.round((t1 - t0) * 1000), perform: Math.max(0, Math.round((answeredMs - t1) * 1000)), respond: 0, after: Math.max(0, Math.round((t3 - answeredMs) * 1000)) }
      : { ...native, decide: Math.round((t1 - t0) * 1000), perform: Math.round((t2 - t1) * 1000), respond: Math.round((t3 - t2) * 1000) };
    if (fastRun && answered && n.recvUs && n.readUs) {
      // Fast path: the caller's time runs from the kernel's hand-over to the performer's answer, which
      // may come before this feed even saw the call; nothing here was on its path.
      const endUs = nowUs + (t3 - t0) * 1000;
      latencyUs = Math.max(0, Math.round(answered.atUs - n.recvUs));
      spansUs = { inspect: Math.round(n.readUs - n.recvUs), decide: 0, perform: Math.max(0, Math.round(answered.atUs - n.readUs)), respond: 0, after: Math.max(0, Math.round(endUs - answered.atUs)) };
    }
    // flags: mount/umount2's flags; for the chmod family its mode (octal).
    const flags = lookup(n.syscall)?.auditFlags?.(n.args);
    this.audit(container, {
      container, pid: n.pid, syscall: n.syscall, strings: n.strings, flags,
      verdict: verdict.kind === 'perform' ? (result === 'continue' || 'val' in result ? 'performed' : 'refused') : verdict.kind === 'errno' ? 'refused' : 'continued',
      errno: result !== 'continue' && 'code' in result ? result.code : undefined,
      reason: verdict.reason, latencyUs, spansUs, ...(answered ? { answeredBy: 'performer' } : {}),
      ...(fastRun ? { path: 'native', fastRule: n.fastRule } : {}),
    });
  }

  /**
   * The verdict recorded for a fast-path call: the actor's own (decide() is pure; the budget was kept
   * natively and is charged above). A rule that disagrees with it is a bug: logged, and the call, which
   * was performed, is recorded as such.
   */
  private fastVerdict(container: string, req: VetRequest, n: FeedNotif): Verdict {
    const v = decide(req);
    if (v.kind === 'perform') return { ...v, reason: `${v.reason} (native fast path: ${n.fastRule})` };
    const m = matchFast({ rules: FAST_RULES }, req, n.stringIssues);
    this.host.log.error({ container, syscall: req.syscall, rule: n.fastRule, actor: v.reason }, 'a fast-path rule disagrees with the vetter: fix the rule');
    return { kind: 'perform', perform: m?.op ?? { op: 'umount', target: req.strings.target ?? '', flags: 0n }, reason: `native fast path (${n.fastRule}); the vetter would have said: ${v.reason}` };
  }

  /**
   * After the actor's path performed a mount or unmount (so the container's protection is known and
   * its performer runs), its fast path is pushed down, or pushed again to a new performer.
   */
  private pushFastPath(container: string, initPid: number, l: ReturnType<FeedNative['listenSeccomp']>, op: string): void {
    if (!l.fastPath || (op !== 'mount' && op !== 'umount')) return;
    let t = this.fastTables.get(container);
    if (!t) this.fastTables.set(container, (t = compileFastTable(this.protection(container, initPid), { ratePerSecond: RATE_PER_SECOND, burst: RATE_BURST })));
    try {
      l.fastPath(t);
    } catch (e) {
      this.host.log.warn({ container, err: (e as Error).message }, 'fast path not pushed; calls take the vetter\'s path');
    }
  }
}
