// Pure renderers of the /proc files eci emulates for containers (what LXCFS/sysbox-fs show).
// No I/O here: container-info.ts gathers the inputs.

/** /proc/uptime: "<uptime> <idle>\n" in seconds, two decimals. `now` and `initStartTime` are seconds
 *  on the same clock (e.g. since boot); a negative difference (clock skew) shows as 0. */
export function uptime(now: number, initStartTime: number, idleSeconds: number): string {
  const up = Math.max(0, now - initStartTime);
  const idle = Math.min(Math.max(0, idleSeconds), Number.MAX_VALUE);
  return `${up.toFixed(2)} ${idle.toFixed(2)}\n`;
}

/** The kernel's /proc/swaps header (mm/swapfile.c swap_show): a container sees no swap device. */
export const SWAPS_HEADER = 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n';

export function swaps(): string {
  return SWAPS_HEADER;
}

export interface MemoryLimits {
  /** The cgroup's memory limit; absent (or not below the host's MemTotal) means unlimited. */
  limitBytes?: number;
  /** The cgroup's current usage. */
  usageBytes?: number;
}

/**
 * The host's /proc/meminfo with MemTotal, MemFree and MemAvailable taken from the cgroup when it has a
 * limit below the host's memory: MemTotal = limit, MemFree = MemAvailable = limit - usage (floored at 0,
 * and never above the host's own values). Every other line, and the layout, is the host's.
 */
export function meminfo(hostMeminfoText: string, m: MemoryLimits): string {
  const kB = (line: string | undefined): number | undefined => {
    const v = line?.match(/^\S+:\s*(\d+)/)?.[1];
    return v === undefined ? undefined : Number(v);
  };
  const lines = hostMeminfoText.split('\n');
  const find = (key: string) => lines.find((l) => l.startsWith(`${key}:`));
  const hostTotal = kB(find('MemTotal'));
  if (m.limitBytes === undefined || !Number.isFinite(m.limitBytes) || m.limitBytes < 0) return hostMeminfoText;
  const limit = Math.floor(m.limitBytes / 1024);
  if (hostTotal !== undefined && limit >= hostTotal) return hostMeminfoText;
  const used = Math.min(limit, Math.max(0, Math.floor((m.usageBytes ?? 0) / 1024)));
  const free = limit - used;
  const hostFree = kB(find('MemFree'));
  const hostAvail = kB(find('MemAvailable'));
  const values: Record<string, number> = {
    MemTotal: limit,
    MemFree: hostFree === undefined ? free : Math.min(free, hostFree),
    MemAvailable: hostAvail === undefined ? free : Math.min(free, hostAvail),
  };
  return lines
    .map((l) => {
      const match = l.match(/^(MemTotal|MemFree|MemAvailable):(\s*)(\d+)(.*)$/);
      if (!match) return l;
      const [, key, space, digits, rest] = match;
      const value = String(values[key]);
      // Keep the column: the kernel right-aligns the number in a fixed width after "Key:".
      const pad = Math.max(1, space.length + digits.length - value.length);
      return `${key}:${' '.repeat(pad)}${value}${rest}`;
    })
    .join('\n');
}
