// A test dockerd with Docker's default bridge network (docker0, iptables NAT, docker-proxy for `-p`)
// that collides with neither the host nor other test dockerds: it runs in a network namespace of
// its own (`ip netns add eci-br-<pid>`), where docker0 and the rules live; the host's side is
// reached with `ip netns exec`. stop() stops dockerd and deletes the namespace with all of it.
import { runCmd } from './run.ts';
import { startDockerd, type Dockerd } from './dockerd.ts';

export interface BridgeDockerd {
  d: Dockerd;
  netns: string;
  /** `wget -qO- <url>` run on the host side, in the dockerd's network namespace. */
  fetch(url: string): Promise<{ code: number; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

export async function startBridgeDockerd(runtimes: Record<string, string>): Promise<BridgeDockerd> {
  const netns = `eci-br-${process.pid}`;
  const ip = async (args: string[]) => {
    const r = await runCmd('ip', args, undefined, undefined, 30_000);
    if (r.code !== 0) throw new Error(`ip ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  };
  await ip(['netns', 'add', netns]);
  let d: Dockerd | undefined;
  try {
    await ip(['-n', netns, 'link', 'set', 'lo', 'up']);
    d = await startDockerd({ runtimes, bridgeNetns: netns });
  } catch (e) {
    await runCmd('ip', ['netns', 'del', netns], undefined, undefined, 30_000);
    throw e;
  }
  const dockerd = d;
  return {
    d: dockerd,
    netns,
    fetch: (url) => runCmd('ip', ['netns', 'exec', netns, 'wget', '-qO-', '-T', '5', url], undefined, undefined, 30_000),
    async stop() {
      try {
        await dockerd.stop();
      } finally {
        await ip(['netns', 'del', netns]);
      }
    },
  };
}
