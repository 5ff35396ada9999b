// The compatibility suite (issue 14): the same cases under runc and under eci, compared. A real
// Debian 12 image built from Debian's packages (helpers/debian-image.ts), through Docker (a data-root
// under /tmp, not /var/lib/docker; plus a dockerd with Docker's default bridge network in a network
// namespace of its own), Podman with its default storage, and containerd through ctr. Each case runs
// with --runtime=runc and then --runtime=eci; any difference in exit code or stdout fails, unless it
// is a row of the one table of documented differences (helpers/compat-refusals.ts, README "Where eci
// differs from runc"), whose check must then hold. runc's own outcome is checked too (`want`).
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridgeDockerd, type BridgeDockerd } from '../helpers/compat-bridge.ts';
import { SCRIPT_CASES, type Engine, type ScriptCase } from '../helpers/compat-cases.ts';
import { compareWithRunc, type Outcome } from '../helpers/compat-refusals.ts';
import { containerdOf, importImageToContainerd, type Containerd } from '../helpers/containerd.ts';
import { debianImageSkipReason, importDebian, importDebianPodman } from '../helpers/debian-image.ts';
import { dockerdAvailable, RUN_FLAGS, startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { startManager, type TestManager } from '../helpers/manager.ts';
import { podmanAvailable, startPodman, type Podman } from '../helpers/podman.ts';
import { runCmd } from '../helpers/run.ts';

const RUNC = ['/usr/sbin/runc', '/usr/bin/runc', '/usr/local/sbin/runc'].find(existsSync) ?? 'runc';
type Runtime = 'runc' | 'eci';

/** Runs `run` under runc, then eci; fails on a difference that is not documented, and checks runc's outcome. */
async function expectLikeRunc(name: string, run: (rt: Runtime) => Promise<Outcome>, want: string[] = []): Promise<void> {
  const runc = await run('runc');
  const eci = await run('eci');
  const runcLines = runc.stdout.split('\n').map((l) => l.trimEnd());
  expect({ code: runc.code, missing: want.filter((w) => !runcLines.includes(w)) }, `runc itself: ${runc.stdout}\n${runc.stderr}`).toEqual({ code: 0, missing: [] });
  const diff = compareWithRunc(name, runc, eci);
  if (diff) expect.fail(diff);
}

/** Polls `probe` until it returns true (at most `tries` × 100 ms); says what it waited for. */
async function waitUntil(what: string, probe: () => Promise<boolean>, tries = 300): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await probe()) return;
    await sleep(100);
  }
  throw new Error(`waited ${tries / 10} s for ${what}`);
}

const quiet = (o: Outcome): Outcome => ({ ...o, stdout: '' }); // for commands that print an id

/** Several steps of one case as one outcome: the first failing exit code, the outputs in order. */
const concat = (...os: Outcome[]): Outcome => ({
  code: os.find((o) => o.code !== 0)?.code ?? 0,
  stdout: os.map((o) => o.stdout.replace(/\n$/, '')).join('\n'),
  stderr: os.map((o) => o.stderr).join(''),
});

// One manager and one dockerd for the file (Docker's cases and ctr's use the dockerd's containerd),
// started by the first describe that needs them and stopped at the end.
let manager: Promise<TestManager> | undefined;
let dockerd: Promise<{ d: Dockerd; img: string }> | undefined;
const sharedManager = () => (manager ??= startManager());
const sharedDockerd = () =>
  (dockerd ??= (async () => {
    const d = await startDockerd({ runtimes: { eci: (await sharedManager()).runtime } });
    try {
      return { d, img: await importDebian(d, 'base') };
    } catch (e) {
      await d.stop();
      throw e;
    }
  })());
afterAll(async () => {
  await (await dockerd?.catch(() => undefined))?.d.stop();
  await (await manager?.catch(() => undefined))?.destroy();
});

/** How the cases common to Docker and Podman drive one engine (their CLIs agree on these verbs). */
interface EngineCli {
  /** Which engine: a documented difference may be one engine's only. */
  name: 'docker' | 'podman';
  /** Runs the engine's CLI for a container of runtime `rt`. */
  cli(rt: Runtime, args: string[]): Promise<Outcome>;
  /** Flags of `run` that select `rt` and the test's isolation. */
  createFlags(rt: Runtime): string[];
  img: string;
  /** A temp dir of the test (host files to copy in, exports). */
  dir: string;
  /** `rm` at once, with no stop timeout (`sleep` as pid 1 ignores SIGTERM). */
  forceRm: string[];
  /** Registers a named volume (or image tag) for cleanup; returns the name. */
  volume(name: string): string;
  image(tag: string): string;
}

/** Volumes, exec, commit, export, diff, pause, stop and cp: the same cases through Docker and Podman. */
function engineCases(engine: () => EngineCli): void {
  const ok = async (rt: Runtime, args: string[]): Promise<string> => {
    const r = await engine().cli(rt, args);
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout.trim();
  };
  const run = (rt: Runtime, args: string[]) => engine().cli(rt, ['run', '--rm', ...engine().createFlags(rt), ...args]);
  /** A detached container that ran `script` and printed `ready`, then sleeps. */
  const started = async (rt: Runtime, script: string): Promise<string> => {
    const e = engine();
    const id = await ok(rt, ['run', '-d', ...e.createFlags(rt), e.img, 'bash', '-c', `${script}\necho ready; exec sleep 300`]);
    await waitUntil(`container ${id} to print ready`, async () => (await e.cli(rt, ['logs', id])).stdout.includes('ready'));
    return id;
  };
  /** Runs `body` on a started container, removed afterwards. */
  const withContainer = async (rt: Runtime, script: string, body: (id: string) => Promise<Outcome>): Promise<Outcome> => {
    const id = await started(rt, script);
    try {
      return await body(id);
    } finally {
      await engine().cli(rt, [...engine().forceRm, id]);
    }
  };
  const CHANGES = 'mkdir /srv/app; echo v1 > /srv/app/data; chown nobody /srv/app/data; rm /etc/issue';

  it('sqlite3 writes to a named volume and a new container reads it back', async () => {
    await expectLikeRunc('sqlite3 on a named volume', async (rt) => {
      const { img, volume } = engine();
      const v = volume(`eci-compat-db-${rt}-${process.pid}`);
      const w = await run(rt, ['-v', `${v}:/data`, img, 'sqlite3', '/data/app.db', "create table t(k text, v int); insert into t values ('a', 42);"]);
      const r = await run(rt, ['-v', `${v}:/data`, img, 'bash', '-c', "sqlite3 /data/app.db 'select k, v from t;'; stat -c '%U %a' /data/app.db"]);
      await engine().cli(rt, ['volume', 'rm', v]);
      return concat(w, r);
    }, ['a|42', 'root 644']);
  });

  it('exec -u', async () => {
    await expectLikeRunc('exec -u', (rt) => withContainer(rt, 'useradd -m -u 1500 u1', async (id) => concat(
      await engine().cli(rt, ['exec', '-u', 'nobody', id, 'id']),
      await engine().cli(rt, ['exec', '-u', '1234:1234', id, 'sh', '-c', 'id; echo x > /tmp/f; stat -c %u:%g /tmp/f']),
      await engine().cli(rt, ['exec', '-u', 'u1', '-w', '/home/u1', id, 'sh', '-c', 'id -un; pwd; touch mine; stat -c %U mine']),
    )), ['uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)', '1234:1234', 'u1', '/home/u1']);
  });

  it('commit of a running container', async () => {
    await expectLikeRunc('commit', (rt) => withContainer(rt, CHANGES, async (id) => {
      const tag = engine().image(`eci-compat-commit-${rt}-${process.pid}`);
      await ok(rt, ['commit', id, tag]);
      try {
        return await run(rt, [tag, 'bash', '-c', 'cat /srv/app/data; stat -c "%U %a" /srv/app/data; ls /etc/issue 2>/dev/null || echo issue-deleted']);
      } finally {
        await engine().cli(rt, ['rmi', tag]);
      }
    }), ['v1', 'nobody 644', 'issue-deleted']);
  });

  it('export of a running container', async () => {
    await expectLikeRunc('export', (rt) => withContainer(rt, CHANGES, async (id) => {
      const tar = join(engine().dir, `export-${rt}.tar`);
      try {
        const exp = await engine().cli(rt, ['export', '-o', tar, id]);
        const list = await runCmd('tar', ['--numeric-owner', '-tvf', tar], undefined, undefined, 60_000);
        // mode, owner and name of the image's files, the container's new file and its deleted one.
        const names = ['etc/passwd', 'usr/bin/sudo', 'srv/app/data', 'etc/issue'];
        const picked = list.stdout.split('\n').map((l) => l.split(/\s+/)).filter((f) => names.includes(f[5]?.replace(/^\.\//, '')));
        return concat(exp, { code: list.code, stdout: picked.map((f) => `${f[0]} ${f[1]} ${f[5].replace(/^\.\//, '')}`).join('\n'), stderr: list.stderr });
      } finally {
        rmSync(tar, { force: true });
      }
    }), ['-rw-r--r-- 0/0 etc/passwd', '-rwsr-xr-x 0/0 usr/bin/sudo', '-rw-r--r-- 65534/0 srv/app/data']);
  });

  it('diff of a running container', async () => {
    await expectLikeRunc('diff', (rt) => withContainer(rt, 'mkdir /srv/app; echo v1 > /srv/app/data; rm /etc/issue; echo x >> /etc/motd', async (id) => {
      const r = await engine().cli(rt, ['diff', id]);
      return { ...r, stdout: r.stdout.split('\n').filter(Boolean).sort().join('\n') };
    }), ['A /srv/app', 'A /srv/app/data', 'D /etc/issue', 'C /etc/motd']);
  });

  it('pause and unpause', async () => {
    await expectLikeRunc('pause/unpause', (rt) => withContainer(rt, '', async (id) => {
      const state = () => engine().cli(rt, ['inspect', '-f', '{{.State.Status}}', id]);
      return concat(quiet(await engine().cli(rt, ['pause', id])), await state(), quiet(await engine().cli(rt, ['unpause', id])), await state(),
        await engine().cli(rt, ['exec', id, 'echo', 'alive']));
    }), ['paused', 'running', 'alive']);
  });

  it('stop of a container whose shell traps TERM', async () => {
    await expectLikeRunc('stop with a TERM trap', async (rt) => {
      const e = engine();
      const id = await ok(rt, ['run', '-d', ...e.createFlags(rt), e.img, 'bash', '-c', 'trap "echo got TERM; exit 42" TERM; echo ready; while :; do sleep 0.1; done']);
      try {
        await waitUntil(`container ${id} to set its trap`, async () => (await e.cli(rt, ['logs', id])).stdout.includes('ready'));
        const stop = await e.cli(rt, ['stop', '-t', '30', id]);
        return concat(quiet(stop), await e.cli(rt, ['inspect', '-f', '{{.State.ExitCode}}', id]), await e.cli(rt, ['logs', id]));
      } finally {
        await e.cli(rt, [...e.forceRm, id]);
      }
    }, ['42', 'ready', 'got TERM']);
  });

  it('a layer that deletes and recreates a directory, made by commit (opaque dir)', async () => {
    const e = engine();
    // Both layers are made under runc, as by any image build; then the image runs under each runtime.
    const tags = [e.image(`eci-compat-opaque1-${process.pid}`), e.image(`eci-compat-opaque2-${process.pid}`)];
    const layer = async (from: string, script: string, tag: string) => {
      const id = await ok('runc', ['run', '-d', ...e.createFlags('runc'), from, 'bash', '-c', `${script} && sleep 300`]);
      try {
        await waitUntil(`container ${id} to write its layer`, async () => (await e.cli('runc', ['exec', id, 'test', '-e', '/etc/x/done'])).code === 0);
        await ok('runc', ['commit', id, tag]);
      } finally {
        await e.cli('runc', [...e.forceRm, id]);
      }
    };
    try {
      await layer(e.img, 'mkdir /etc/x && echo old > /etc/x/old && touch /etc/x/done', tags[0]);
      await layer(tags[0], 'rm -rf /etc/x && mkdir /etc/x && echo new > /etc/x/new && touch /etc/x/done', tags[1]);
      await expectLikeRunc('opaque directory made by commit', (rt) => run(rt, [tags[1], 'bash', '-c', 'ls -A /etc/x; cat /etc/x/*']), ['new']);
    } finally {
      for (const t of tags.reverse()) await e.cli('runc', ['rmi', t]);
    }
  });

  it('cp into and out of a running container', async () => {
    // Podman copies into a running container from within its mount namespace (see the 'podman cp' row).
    await expectLikeRunc(engine().name === 'podman' ? 'podman cp' : 'cp', (rt) => withContainer(rt, 'echo out > /tmp/out.txt; chown nobody /tmp/out.txt', async (id) => {
      const src = join(engine().dir, `in-${rt}.txt`);
      const dst = join(engine().dir, `out-${rt}.txt`);
      writeFileSync(src, 'from-host\n');
      try {
        const cpIn = await engine().cli(rt, ['cp', src, `${id}:/tmp/in.txt`]);
        const inside = await engine().cli(rt, ['exec', id, 'sh', '-c', 'cat /tmp/in.txt; stat -c %U:%G /tmp/in.txt']);
        const cpOut = await engine().cli(rt, ['cp', `${id}:/tmp/out.txt`, dst]);
        let out: string;
        try {
          out = `${readFileSync(dst, 'utf8')}${statSync(dst).uid}`;
        } catch (e) {
          out = `not copied out: ${(e as Error).message}`;
        }
        return concat(cpIn, inside, cpOut, { code: 0, stdout: out, stderr: '' });
      } finally {
        rmSync(src, { force: true });
        rmSync(dst, { force: true });
      }
    }), ['from-host', 'root:root', 'out']);
  });
}

const casesFor = (e: Engine): ScriptCase[] => SCRIPT_CASES.filter((c) => c.engines.includes(e));
const imageSkip = debianImageSkipReason();
const dockerAvail = dockerdAvailable();
const dockerSkip = imageSkip || (dockerAvail.ok ? '' : dockerAvail.reason!);

describe.skipIf(dockerSkip !== '')(`compatibility with runc: Docker${dockerSkip ? ` (skipped: ${dockerSkip})` : ''}`, () => {
  let m: TestManager;
  let d: Dockerd;
  let img: string;
  let dir: string;
  const ok = async (args: string[]): Promise<string> => {
    const r = await d.docker(args);
    expect(r.code, `docker ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout.trim();
  };
  const run = (rt: Runtime, args: string[]) => d.docker(['run', '--rm', ...RUN_FLAGS, `--runtime=${rt}`, ...args]);

  beforeAll(async () => {
    dir = mkdtempSync('/tmp/ecic-');
    chmodSync(dir, 0o755);
    m = await sharedManager();
    ({ d, img } = await sharedDockerd());
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs on a data-root that is not /var/lib/docker', async () => {
    expect(await ok(['info', '-f', '{{.DockerRootDir}}'])).not.toBe('/var/lib/docker');
  });

  for (const c of casesFor('docker')) {
    it(c.name, async () => {
      await expectLikeRunc(c.name, (rt) => run(rt, [...(c.flags ?? []), img, 'bash', '-c', c.script]), c.want);
    });
  }

  engineCases(() => ({
    name: 'docker',
    cli: (_rt, args) => d.docker(args),
    createFlags: (rt) => [...RUN_FLAGS, `--runtime=${rt}`],
    img,
    dir,
    forceRm: ['rm', '-f'],
    volume: (name) => name,
    image: (tag) => tag,
  }));

  it('an image layer that deletes and recreates a directory (opaque dir)', async () => {
    const ctx = join(dir, 'opaque');
    mkdirSync(ctx);
    writeFileSync(join(ctx, 'Dockerfile'), `FROM ${img}\nRUN mkdir /etc/x && echo old > /etc/x/old\nRUN rm -rf /etc/x && mkdir /etc/x && echo new > /etc/x/new\n`);
    const tag = 'compat-opaque';
    await ok(['build', '-q', '-t', tag, ctx]); // built by the default runtime, runc
    try {
      await expectLikeRunc('opaque directory in a layer', (rt) => run(rt, [tag, 'bash', '-c', 'ls -A /etc/x; cat /etc/x/*']), ['new']);
    } finally {
      await d.docker(['rmi', tag]);
    }
  });

  // The documented refusals and differences that need more than a script.
  it('host pid namespace', async () => {
    await expectLikeRunc('host pid namespace', (rt) => run(rt, ['--pid', 'host', img, 'bash', '-c', '[ -d /proc/1 ] && echo host-pids']), ['host-pids']);
  });

  it('restricted host path', async () => {
    await expectLikeRunc('restricted host path', (rt) => run(rt, ['-v', '/sys/kernel/mm:/k:ro', img, 'bash', '-c', 'ls /k >/dev/null && echo listed']), ['listed']);
  });

  it('setuid on a shared host volume', async () => {
    await expectLikeRunc('setuid on a shared host volume', (rt) =>
      run(rt, ['-v', `${dir}:/v`, img, 'bash', '-c', `cp /bin/true /v/t-${rt} && chmod 755 /v/t-${rt}; chmod u+s /v/t-${rt}; echo chmod=$?; stat -c %a /v/t-${rt}`]), ['chmod=0', '4755']);
  });

  describe("Docker's default bridge network", () => {
    let b: BridgeDockerd;
    beforeAll(async () => {
      b = await startBridgeDockerd({ eci: m.runtime });
      await importDebian(b.d, 'base');
    });
    afterAll(async () => {
      await b?.stop();
    });

    it('-p 127.0.0.1:PORT:80 is reached from the host, and the container by its bridge address', async () => {
      await expectLikeRunc('published port on the default bridge', async (rt) => {
        const port = rt === 'runc' ? 18080 : 18081;
        const r = await b.d.docker(['run', '-d', `--runtime=${rt}`, '-p', `127.0.0.1:${port}:80`, img, 'bash', '-c',
          'mkdir -p /srv/www && echo hello-bridge > /srv/www/index.html && exec busybox httpd -f -p 80 -h /srv/www']);
        if (r.code !== 0) return r;
        const id = r.stdout.trim();
        try {
          let got: Outcome = { code: -1, stdout: '', stderr: 'never tried' };
          await waitUntil(`http://127.0.0.1:${port}/ to answer`, async () => (got = await b.fetch(`http://127.0.0.1:${port}/`)).code === 0, 100).catch(() => {});
          const addr = (await b.d.docker(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', id])).stdout.trim();
          const direct = await b.fetch(`http://${addr}:80/`);
          const net = await b.d.docker(['inspect', '-f', '{{.HostConfig.NetworkMode}} {{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}', id]);
          return concat(got, direct, net);
        } finally {
          await b.d.docker(['rm', '-f', id]);
        }
      }, ['hello-bridge', 'default bridge']);
    });
  });
});

const podmanAvail = podmanAvailable();
const podmanSkip = imageSkip || (podmanAvail.ok ? '' : podmanAvail.reason!);

describe.skipIf(podmanSkip !== '')(`compatibility with runc: Podman with its default storage${podmanSkip ? ` (skipped: ${podmanSkip})` : ''}`, () => {
  let m: TestManager;
  let p: Podman;
  let img: string;
  const runtimeOf = (rt: Runtime) => (rt === 'runc' ? RUNC : m.runtime);
  // Podman's default nofile and nproc can be above the hard limits of conmon (which runs runc), and
  // runc cannot raise them without CAP_SYS_RESOURCE (eci clamps them): both runtimes get limits
  // within ours, nproc within the 32768 conmon got here.
  const hard = (what: string) => Number(new RegExp(`^Max ${what}\\s+\\S+\\s+(\\d+)`, 'm').exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 1024);
  const ulimits = [['nofile', hard('open files')], ['nproc', Math.min(hard('processes'), 32768)]].flatMap(([k, v]) => ['--ulimit', `${k}=${v}:${v}`]);
  const run = (rt: Runtime, args: string[]): Promise<Outcome> =>
    p.podman(['--runtime', runtimeOf(rt), 'run', '--rm', ...p.runFlags, ...ulimits, ...args]);

  beforeAll(async () => {
    m = await sharedManager();
    p = await startPodman({ defaultStorage: true });
    img = await importDebianPodman(p, 'base', `eci-compat-debian12-${process.pid}`);
  });
  afterAll(async () => {
    await p?.stop();
  });

  it('uses the default graphroot and runroot', async () => {
    const r = await p.podman(['info', '-f', '{{.Store.GraphRoot}} {{.Store.RunRoot}}']);
    expect(r.stdout.trim()).toBe('/var/lib/containers/storage /run/containers/storage');
  });

  for (const c of casesFor('podman')) {
    it(c.name, async () => {
      await expectLikeRunc(c.name, (rt) => run(rt, [...(c.flags ?? []), img, 'bash', '-c', c.script]), c.want);
    });
  }

  engineCases(() => ({
    name: 'podman',
    // Podman keeps no runtime per container: each call names it.
    cli: (rt, args) => p.podman(['--runtime', runtimeOf(rt), ...args]),
    createFlags: () => [...p.runFlags, ...ulimits],
    img,
    dir: p.dir,
    forceRm: ['rm', '-f', '-t', '0'],
    volume: (name) => {
      p.created!.volumes.push(name);
      return name;
    },
    image: (tag) => {
      p.created!.images.push(`localhost/${tag}`);
      return tag;
    },
  }));
});

const ctrSkip = dockerSkip;

describe.skipIf(ctrSkip !== '')(`compatibility with runc: containerd (ctr)${ctrSkip ? ` (skipped: ${ctrSkip})` : ''}`, () => {
  let m: TestManager;
  let c: Containerd;
  let ref: string;
  let n = 0;
  const run = (rt: Runtime, args: string[]): Promise<Outcome> =>
    // --allow-new-privs: ctr's default spec sets noNewPrivileges, which turns setuid off under runc too.
    c.ctr(['run', '--rm', '--allow-new-privs', ...c.runFlags(rt === 'runc' ? RUNC : m.runtime), ref, `compat-${process.pid}-${++n}`, ...args]);

  beforeAll(async () => {
    m = await sharedManager();
    const { d, img } = await sharedDockerd();
    c = containerdOf(d);
    ref = await importImageToContainerd(d, c, img);
  });
  afterAll(async () => {
    await c?.cleanup();
  });

  for (const sc of casesFor('ctr')) {
    it(sc.name, async () => {
      await expectLikeRunc(sc.name, (rt) => run(rt, ['bash', '-c', sc.script]), sc.want);
    });
  }
});
