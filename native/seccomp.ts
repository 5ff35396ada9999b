// The seccomp agent: the listener socket runc connects to, the notify fds it hands over, and the
// vetted calls done for a container process (mount-as, umount-as, chmod-as through eci-helper or the
// fd's performer). The pure parts live in ./seccomp-agent.ts, shared with the mock.
import { isAbsolute } from 'node:path';
import { loadAddon } from './addon.ts';
import { NativeError, usageError } from './errors.ts';
import { runHelperWithFd } from './helpers.ts';
import { PERFORM_NOTIFY_FD, closePerformer, performerFor, type Performer } from './performer.ts';
import {
  asHelperArgs,
  chmodAsHelperArgs,
  createSeccompListener,
  FastFallbackError,
  parseAgentDelivery,
  type FastTableSpec,
  type AsOutcome,
  type ChmodAsOptions,
  type MountAsOptions,
  type SeccompAgentConnection,
  type SeccompListener,
  type UmountAsOptions,
} from './seccomp-agent.ts';

export { FastFallbackError } from './seccomp-agent.ts';
export type {
  FastRuleSpec,
  FastTableSpec,
  AsNotify,
  AsOutcome,
  ChmodAsOptions,
  MountAsOptions,
  SeccompAgentConnection,
  SeccompListener,
  SeccompNotif,
  SeccompResponse,
  SeccompStringIssue,
  UmountAsOptions,
} from './seccomp-agent.ts';

/**
 * Listens on an AF_UNIX socket at `path` (mode 0600; a stale socket is replaced) for runtimes that hand
 * over a seccomp notify fd (`linux.seccomp.listenerPath`). onConnection runs once per connection, on the
 * event loop; a connection with an error carries no fd (all were closed). The receiver owns notifyFd.
 */
export function serveSeccompAgent(path: string, onConnection: (c: SeccompAgentConnection) => void): { close(): Promise<void> } {
  if (!isAbsolute(path)) throw usageError(`seccomp agent socket must be an absolute path, got ${path}`);
  const s = loadAddon().seccomp;
  let handle: { close(): void };
  try {
    handle = s.listen(path, (d) => {
      const { conn, close } = parseAgentDelivery(d);
      for (const fd of close) {
        try {
          s.closeFd(fd);
        } catch {
          /* already gone */
        }
      }
      onConnection(conn);
    });
  } catch (err) {
    throw NativeError.from(err);
  }
  let closed = false;
  return {
    close() {
      if (!closed) {
        closed = true;
        handle.close();
      }
      return Promise.resolve();
    },
  };
}

/**
 * Watches a seccomp notify fd (taking ownership of it) without blocking the event loop. With
 * o.holderTag, each notification's id is noted at the fd-holder (setFdHolderNotes) under that tag.
 * With o.fastPath (and not ECI_FAST_PATH=0), its performer gets the fast path's socket and the
 * listener's fastPath() can push a table down to the watcher thread.
 */
export function listenSeccomp(fd: number, o: { holderTag?: string; fastPath?: boolean } = {}): SeccompListener {
  if (!Number.isInteger(fd) || fd < 0) throw usageError(`listenSeccomp needs an fd, got ${fd}`);
  const s = loadAddon().seccomp;
  let watcher: ReturnType<typeof s.watch> | undefined;
  const listener: SeccompListener = createSeccompListener({
    fd,
    watch(cb) {
      try {
        return (watcher = s.watch(fd, cb, o.holderTag));
      } catch (err) {
        throw NativeError.from(err);
      }
    },
    respond: (id, r) => s.respond(fd, id, r),
    idValid: (id) => s.idValid(fd, id),
  });
  // The fast path: pushed with the line to the performer it was pushed with; a new performer (the
  // old one died) gets it pushed again.
  const fast = o.fastPath === true && process.env.ECI_FAST_PATH !== '0';
  if (fast) fastListeners.add(listener);
  let pushedTo: Performer | undefined;
  const byGen = new Map<number, Performer>();
  Object.assign(listener, {
    fastPath(t: FastTableSpec): boolean {
      if (!fast || listener.fd < 0 || !watcher) return false;
      const p = performerFor(fd, listener, true);
      if (!p) return false;
      if (p === pushedTo) return true;
      const sock = p.takeNativeEnd();
      if (sock === undefined) return false;
      const gen = byGen.size + 1;
      try {
        if (!watcher.fast({ ...t, sock, gen })) return false;
      } catch {
        return false; // the addon closed sock
      }
      pushedTo = p;
      byGen.set(gen, p);
      return true;
    },
    fastCharge(): void {
      if (pushedTo) watcher?.charge();
    },
    fastOutcome(n: { fastId: number; fastGen?: number }): Promise<AsOutcome> {
      const p = byGen.get(n.fastGen ?? 0);
      if (!p) return Promise.reject(new FastFallbackError('no fast path here'));
      return p.awaitNative(n.fastId);
    },
  });
  // The listener is its performer's owner: see performers in performer.ts (fd numbers come back).
  owners.set(fd, listener);
  void listener.closed.then(() => {
    if (owners.get(fd) === listener) owners.delete(fd);
    closePerformer(fd, listener);
  });
  return listener;
}

/** The live listener of each notify fd number. */
const owners = new Map<number, object>();
/** Listeners whose performers get the fast path's socket. */
const fastListeners = new WeakSet<object>();

function runAsHelper(kind: 'mount-as' | 'umount-as', o: MountAsOptions | UmountAsOptions): Promise<AsOutcome> {
  const viaServer = () => runHelperWithFd(asHelperArgs(kind, o, o.notify ? 3 : undefined), o.notify?.fd);
  const owner = o.notify ? owners.get(o.notify.fd) : undefined;
  const p = o.notify ? performerFor(o.notify.fd, owner, owner !== undefined && fastListeners.has(owner)) : undefined;
  if (p) return p.run(asHelperArgs(kind, o, PERFORM_NOTIFY_FD), viaServer, o.notify?.answer ? o.notify.id : undefined);
  return viaServer().then(() => ({}));
}

/**
 * mount(2) performed for process o.pid, in its namespaces, root, cwd, ids and capabilities (eci-helper
 * mount-as). Rejects with a NativeError: syscall 'mount' means the mount itself failed and its errno is
 * the answer for the container; any other syscall is a failure to get there (ENOENT/ESRCH: target gone).
 */
export async function mountAs(o: MountAsOptions): Promise<AsOutcome> {
  return runAsHelper('mount-as', o);
}

/** umount2(2) for process o.pid (eci-helper umount-as); errors as for mountAs, with syscall 'umount2'. */
export async function umountAs(o: UmountAsOptions): Promise<AsOutcome> {
  return runAsHelper('umount-as', o);
}

/**
 * chmod(2) with S_ISUID/S_ISGID for process o.pid, in its namespaces, root, cwd, ids and capabilities;
 * refused with EPERM when the object is on one of o.protect (mount ids) / o.protectDevs. Rejects with a
 * NativeError: syscall 'chmod' means the chmod itself failed (or was refused) and its errno is the
 * answer for the container; any other syscall is a failure to get there (ENOENT/ESRCH: caller gone).
 */
export function chmodAs(o: ChmodAsOptions): Promise<void> {
  return runHelperWithFd(chmodAsHelperArgs(o, o.notify ? 3 : undefined), o.notify?.fd);
}
