// A path argument as the caller sees it, for the manager's own work after a performed call (the
// emulated files bound onto a new proc/sysfs mount). The C performer resolves the call itself
// (native/cmd/caller-path.h); here, /proc/self and /proc/thread-self would name the manager.
// Pure: the host's /proc is read through the function given.

/** `/proc/self/fd/3/x` -> { link: 'fd/3', rest: 'x' }; undefined when the path does not go through the caller's fd, cwd or root link. */
export function procSelfLink(path: string): { thread: boolean; link: string; rest: string } | undefined {
  const m = /^\/+proc\/+(self|thread-self)\/+(fd\/\d+|cwd|root)(?:\/+(.*))?$/.exec(path);
  return m ? { thread: m[1] === 'thread-self', link: m[2]!, rest: m[3] ?? '' } : undefined;
}

/**
 * The absolute path, in the caller's mount namespace, that `path` names for thread `tid` of process
 * `tgid` (host pids): relative paths from its cwd, /proc/self|thread-self/{fd/N,cwd,root} through
 * readlink of the host's /proc. undefined when a link cannot be read (the caller is gone).
 */
export function callerAbsolutePath(path: string, tid: number, readlink: (p: string) => string, tgid = tid): string | undefined {
  const join = (dir: string, rest: string) => (rest ? `${dir.replace(/\/+$/, '')}/${rest}` : dir);
  try {
    const l = procSelfLink(path);
    if (l) return join(readlink(`/proc/${l.thread ? tid : tgid}/${l.link}`), l.rest);
    return path.startsWith('/') ? path : join(readlink(`/proc/${tid}/cwd`), path);
  } catch {
    return undefined;
  }
}
