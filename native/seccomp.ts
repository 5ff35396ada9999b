// The seccomp agent: the listener socket runc connects to, the notify fds it hands over, and the
// vetted calls done for a container process (mount-as, umount-as, chmod-as through eci-helper or the
// fd's performer). The pure parts live in ./seccomp-agent.ts, shared with the mock.
import { isAbsolute } from 'node:path';
import { loadAddon } from './addon.ts';
import { NativeError, usageError } from './errors.ts';
import { runHelperWithFd } from './helpers.ts';
import { PERFORM_NOTIFY_FD, closePerformer, performerFor } from './performer.ts';
import {
  asHelperArgs,
  chmodAsHelperArgs,
  createSeccompListener,
  parseAgentDelivery,
  type AsOutcome,
  type ChmodAsOptions,
  type MountAsOptions,
  type SeccompAgentConnection,
  type SeccompListener,
  type UmountAsOptions,
} from './seccomp-agent.ts';

export type {
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
 */
export function listenSeccomp(fd: number, o: { holderTag?: string } = {}): SeccompListener {
  if (!Number.isInteger(fd) || fd < 0) throw usageError(`listenSeccomp needs an fd, got ${fd}`);
  const s = loadAddon().seccomp;
  const listener = createSeccompListener({
    fd,
    watch(cb) {
      try {
        return s.watch(fd, cb, o.holderTag);
      } catch (err) {
        throw NativeError.from(err);
      }
    },
    respond: (id, r) => s.respond(fd, id, r),
    idValid: (id) => s.idValid(fd, id),
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

function runAsHelper(kind: 'mount-as' | 'umount-as', o: MountAsOptions | UmountAsOptions): Promise<AsOutcome> {
  const viaServer = () => runHelperWithFd(asHelperArgs(kind, o, o.notify ? 3 : undefined), o.notify?.fd);
  const p = o.notify ? performerFor(o.notify.fd, owners.get(o.notify.fd)) : undefined;
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
