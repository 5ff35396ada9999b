// Parses /proc/<pid>/mountinfo (proc(5)). Pure, so it is unit-tested on captured text.

export interface MountInfo {
  id: number;
  parent: number;
  /** major:minor of the filesystem (st_dev). */
  dev: string;
  mountPoint: string;
  root: string;
  fsType: string;
  source: string;
  options: string;
  superOptions: string;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo octal. */
export function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountInfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (sep < 0 || f.length < sep + 4) continue;
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      dev: f[2],
      root: unescapeOctal(f[3]),
      mountPoint: unescapeOctal(f[4]),
      options: f[5],
      fsType: f[sep + 1],
      source: unescapeOctal(f[sep + 2]),
      superOptions: f.slice(sep + 3).join(' '),
    });
  }
  return out;
}

/** The mount that is on top at exactly `path` (the last one listed wins, as later mounts stack). */
export function mountAt(mounts: MountInfo[], path: string): MountInfo | undefined {
  let found: MountInfo | undefined;
  for (const m of mounts) if (m.mountPoint === path) found = m;
  return found;
}

/**
 * Where the mount on top at `path` shows its filesystem from, as a host path, when it is a bind of a
 * subtree (root other than '/'): the mountpoint of another mount of the same filesystem whose root
 * contains it, plus the rest. undefined: nothing is mounted there, or a whole filesystem is (tmpfs,
 * nfs, ...). null: a subtree of a filesystem mounted nowhere else here (cannot tell what it is).
 */
export function bindOrigin(mounts: MountInfo[], path: string): string | null | undefined {
  const m = mountAt(mounts, path);
  if (!m || m.root === '/') return undefined;
  const inside = (p: string, dir: string) => dir === '/' || p === dir || p.startsWith(`${dir}/`);
  let best: MountInfo | undefined;
  for (const o of mounts) {
    if (o === m || o.dev !== m.dev || o.mountPoint === path || !inside(m.root, o.root)) continue;
    if (!best || o.root.length > best.root.length || (o.root.length === best.root.length && o.mountPoint.length < best.mountPoint.length)) best = o;
  }
  if (!best) return null;
  const rest = best.root === '/' ? m.root : m.root.slice(best.root.length);
  return best.mountPoint === '/' ? rest : `${best.mountPoint}${rest}`;
}

/** Splits overlay super options into lower/upper/work (lowerdir may carry ':'-separated layers). */
export function overlayLayers(superOptions: string): { lower: string[]; upper?: string; work?: string } {
  const opts: Record<string, string> = {};
  const lower: string[] = [];
  for (const kv of superOptions.split(',')) {
    const eq = kv.indexOf('=');
    if (eq <= 0) continue;
    const k = kv.slice(0, eq);
    const v = unescapeOctal(kv.slice(eq + 1));
    // `lowerdir=a:b` (mount(2)) or one `lowerdir+=a` per layer (fsconfig, Linux 6.7+).
    if (k === 'lowerdir') lower.push(...v.split(':').filter(Boolean));
    else if (k === 'lowerdir+') lower.push(v);
    else opts[k] = v;
  }
  return { lower, upper: opts.upperdir, work: opts.workdir };
}

/** The deepest directory that contains every path (all absolute). */
export function commonAncestor(paths: string[]): string {
  const split = paths.map((p) => p.split('/').filter(Boolean));
  const first = split[0] ?? [];
  let n = first.length;
  for (const s of split) {
    let i = 0;
    while (i < n && i < s.length && s[i] === first[i]) i++;
    n = i;
  }
  return '/' + first.slice(0, n).join('/');
}
