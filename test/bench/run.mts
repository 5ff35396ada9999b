// eci benchmark suite: `npm run bench` (tsx test/bench/run.mts). Reports, never assertions: the exit
// status is 0 unless the harness breaks (setup fails, a section cannot measure).
//
// Environment:
//   ECI_BENCH_ONLY=start,image,rss,more,procfs,issue17,issue16   sections to run (default: these; more = binds, policy, data path,
//                                          mount latency; procfs = /proc read throughput vs LXCFS; issue17 = issue 17's rows,
//                                          quiet and beside a busy neighbour (see issue17.ts: ECI_BENCH_ROWS, ECI_BENCH_PASSES,
//                                          ECI_BENCH_ISSUE17_N); load = creation throughput per ECI_BENCH_LOAD_PAR, RSS at 100;
//                                          datapath, mountlat: only those two parts of more; issue16 = time to systemd
//                                          `running`, eci vs runc, see issue16.ts: ECI_BENCH_ISSUE16_N)
//   ECI_BENCH_N=30 ECI_BENCH_WARMUP=3 start-time runs per runtime
//   ECI_BENCH_CALLS_N=10             runs per runtime with timestamping runtime wrappers (0: skip)
//   ECI_BENCH_BIG_MB=400             size of the large image; ECI_BENCH_IMAGE_N=10, ECI_BENCH_IMAGE_WARMUP=2
//   ECI_BENCH_RSS_COUNT=50 ECI_BENCH_RSS_BATCH=5
//   ECI_BENCH_LOAD_N=100 ECI_BENCH_LOAD_PAR=20 (comma list: one eci and one runc run per level)
//   ECI_BENCH_SAVE_LOGS=1            keep the manager's and dockerd's logs (test/bench/last-*.log) even when all went well
// Writes test/bench/last-report.json.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { dockerdAvailable, importBusyboxImage, mountsUnder, startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { REPO, startManager, type TestManager } from '../helpers/manager.ts';
import { configFromEnv, type BenchContext } from './context.ts';
import { benchImage, reportImage, type ImageResult } from './image.ts';
import { benchRss, reportRss, type RssResult } from './rss.ts';
import { benchStart, reportStart, writeTimingWrapper, type StartResult } from './start.ts';
import { fmtMiB, nowMs, rounded, rssKiB } from './stats.ts';
import { benchMore, reportMore, type MoreResult } from './more.ts';
import { benchProcfs, reportProcfs, type ProcfsResult } from './procfs.ts';
import { benchLoad, reportLoad, type LoadResult } from './load.ts';
import { benchIssue17, reportIssue17, type Issue17Result } from './issue17.ts';
import { benchIssue16, reportIssue16, type Issue16Result } from './issue16.ts';

const REPORT = join(REPO, 'test/bench/last-report.json');
const HELPER_TMP = '/run/eci/tmp';

const idmappedCount = () => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes('idmapped')).length;
const ls = (dir: string) => (existsSync(dir) ? readdirSync(dir).sort() : []);
const tmpLeft = () => ls('/tmp').filter((e) => e.startsWith('eci-bb-') || e.startsWith('eci-bench-'));
const version = (cmd: string, args: string[]) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' }).split('\n')[0].trim();
  } catch {
    return 'n/a';
  }
};

/** Keeps the manager's and dockerd's logs next to the report when something failed. */
function saveLogs(m: TestManager | undefined, d: Dockerd | undefined): void {
  try {
    if (m) writeFileSync(join(REPO, 'test/bench/last-manager.log'), m.log());
    if (d) writeFileSync(join(REPO, 'test/bench/last-dockerd.log'), readFileSync(join(d.dir, 'dockerd.log')));
  } catch { /* best effort */ }
}

interface Report {
  date: string;
  host: Record<string, string | number>;
  config: Record<string, unknown>;
  sections: { start?: StartResult; image?: ImageResult; rss?: RssResult; more?: MoreResult; procfs?: ProcfsResult; load?: LoadResult; issue17?: Issue17Result; issue16?: Issue16Result };
  errors: Record<string, string>;
  checks: Record<string, unknown>;
  durationS?: number;
}

async function main(): Promise<number> {
  const t0 = nowMs();
  const config = configFromEnv();
  const avail = dockerdAvailable();
  if (!avail.ok) {
    console.error(`bench: cannot run: ${avail.reason}`);
    return 2;
  }
  const report: Report = {
    date: new Date().toISOString(),
    host: {
      kernel: release(), cpus: cpus().length, node: process.version,
      dockerd: version('/usr/sbin/dockerd', ['--version']), runc: version('/usr/sbin/runc', ['--version']),
    },
    config: { ...config, only: [...config.only] },
    sections: {},
    errors: {},
    checks: {},
  };
  const before = { idmapped: idmappedCount(), helperTmp: ls(HELPER_TMP), tmp: tmpLeft() };
  let stopRequested = false;
  const onSignal = (sig: string) => {
    if (stopRequested) return;
    stopRequested = true;
    console.error(`\nbench: ${sig}: stopping after the current step, then cleaning up`);
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  const say = (l: string) => console.log(l);

  let m: TestManager | undefined;
  let d: Dockerd | undefined;
  let tmp: string | undefined;
  let harnessBroke = false;
  const out: string[] = [];
  try {
    tmp = await mkdtemp('/tmp/eci-bench-');
    m = await startManager();
    const atStartKiB = rssKiB(m.pid());
    const callLogs: Record<string, string> = {};
    // As installed: dockerd runs the launcher itself (the manager's socket in its environment), not
    // m.runtime's sh wrapper, which costs an exec of /bin/sh per runtime call (~0.7 ms, 4 per run).
    const launcher = join(REPO, 'bin/eci-runc');
    const runtimes: Record<string, string> = { eci: launcher, 'runc-plain': '/usr/sbin/runc' };
    if (config.callsN > 0 && config.only.has('start')) {
      for (const [name, real] of [['eci-timed', launcher], ['runc-timed', '/usr/sbin/runc']]) {
        callLogs[name] = join(tmp, `${name}.log`);
        runtimes[name] = join(tmp, name);
        writeTimingWrapper(runtimes[name], real, callLogs[name]);
      }
    }
    say(`bench: manager pid ${m.pid()} (${fmtMiB(atStartKiB)}), starting dockerd`);
    d = await startDockerd({ runtimes, env: { ECI_SOCKET: m.socket } });
    const image = await importBusyboxImage(d, 'eci-bench-tiny');
    const sanity = await d.docker(['run', '--rm', '--network', 'none', '--runtime=eci', image, 'cat', '/proc/self/uid_map']);
    if (sanity.code !== 0) throw new Error(`eci sanity run failed (${sanity.code}): ${sanity.stderr.trim()}`);
    report.checks.eciUidMap = sanity.stdout.trim().split(/\s+/).join(' ');
    say(`bench: dockerd pid ${d.pid}, image ${image}; eci container uid_map: ${report.checks.eciUidMap}`);
    const c: BenchContext = { d, m, image, tmp, config, callLogs, stopping: () => stopRequested, say };

    const sections: [string, () => Promise<void>][] = [
      ['start', async () => { report.sections.start = await benchStart(c); }],
      ['image', async () => { report.sections.image = await benchImage(c); }],
      ['rss', async () => { report.sections.rss = await benchRss(c, atStartKiB); }],
      ['more', async () => { report.sections.more = await benchMore(c); }],
      ['procfs', async () => { report.sections.procfs = await benchProcfs(c); }],
      ['issue17', async () => { report.sections.issue17 = await benchIssue17(c); }],
      ['issue16', async () => { report.sections.issue16 = await benchIssue16(c); }],
      ['load', async () => { report.sections.load = await benchLoad(c); }],
      ['datapath', async () => { report.sections.more = { ...report.sections.more, ...(await benchMore(c, ['datapath'])) }; }],
      ['mountlat', async () => { report.sections.more = { ...report.sections.more, ...(await benchMore(c, ['mountlat'])) }; }],
    ];
    for (const [name, f] of sections) {
      if (!config.only.has(name) || stopRequested) continue;
      const ts = nowMs();
      try {
        await f();
        say(`bench: section ${name} done in ${((nowMs() - ts) / 1000).toFixed(0)} s`);
      } catch (e) {
        report.errors[name] = (e as Error).message;
        harnessBroke = true;
        say(`bench: section ${name} FAILED: ${(e as Error).message}`);
        saveLogs(m, d);
      }
    }
    if (report.sections.rss?.failures.length || process.env.ECI_BENCH_SAVE_LOGS === '1') saveLogs(m, d);
    report.checks.managerRunDirLeft = ls(join(m.dir, 'run', 'containers'));
    report.checks.managerHelperTmpLeft = ls(join(m.dir, 'run', 'tmp')); // eci-helper's ovl-* dirs (ECI_RUN_DIR/tmp)
    report.checks.managerLogErrors = m.log().split('\n').filter((l) => /"level":(50|60)/.test(l)).length;
  } catch (e) {
    harnessBroke = true;
    report.errors.harness = (e as Error).stack ?? String(e);
    console.error(`bench: harness error: ${(e as Error).message}`);
  } finally {
    if (d) {
      try {
        await d.stop();
      } catch (e) {
        report.errors.dockerdStop = (e as Error).message;
        harnessBroke = true;
      }
    }
    if (m) {
      // With dockerd gone every container is deleted, so eci should have unmounted every rootfs.
      // Whatever is left is reported as a leak, then detached so the run leaves nothing behind.
      // The manager's own FUSE servers (/proc files, sysctl files) stay mounted until it stops: not leaks.
      const own = new Set(['procfs', 'sysctlfs'].map((x) => join(m!.dir, 'run', x)));
      const left = (await mountsUnder(m.dir)).filter((p) => !own.has(p));
      report.checks.mountsUnderManagerDir = left;
      for (const mp of left.sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', mp]);
      try {
        await m.destroy();
      } catch (e) {
        report.errors.managerStop = (e as Error).message;
        harnessBroke = true;
      }
    }
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }
  await new Promise((r) => setTimeout(r, 500));
  const after = { idmapped: idmappedCount(), helperTmp: ls(HELPER_TMP), tmp: tmpLeft() };
  Object.assign(report.checks, {
    idmappedMountsBefore: before.idmapped, idmappedMountsAfter: after.idmapped,
    helperTmpBefore: before.helperTmp, helperTmpAfter: after.helperTmp,
    tmpLeftBefore: before.tmp, tmpLeftAfter: after.tmp,
    managerDirRemoved: m ? !existsSync(m.dir) : undefined, dockerdDirRemoved: d ? !existsSync(d.dir) : undefined,
  });
  report.durationS = (nowMs() - t0) / 1000;

  const s = report.sections;
  out.push('', `==== eci benchmark report  ${report.date}  (${report.host.kernel}, ${report.host.cpus} CPUs, ${report.host.runc}) ====`);
  if (s.start) out.push(...reportStart(s.start));
  if (s.image) out.push(...reportImage(s.image));
  if (s.rss) out.push(...reportRss(s.rss));
  if (s.more) out.push(...reportMore(s.more));
  if (s.procfs) out.push(...reportProcfs(s.procfs));
  if (s.load) out.push(...reportLoad(s.load));
  if (s.issue17) out.push(...reportIssue17(s.issue17));
  if (s.issue16) out.push(...reportIssue16(s.issue16));
  for (const [k, v] of Object.entries(report.errors)) out.push(`ERROR ${k}: ${v.split('\n')[0]}`);
  const newTmp = after.tmp.filter((x) => !before.tmp.includes(x));
  const newHelper = after.helperTmp.filter((x) => !before.helperTmp.includes(x));
  out.push(
    `Checks: idmapped mounts ${before.idmapped} before -> ${after.idmapped} after${before.idmapped === after.idmapped ? ' (same)' : ' (CHANGED; other managers on this host count too)'}; ` +
      `helper tmp dirs left: ${[...((report.checks.managerHelperTmpLeft as string[] | undefined) ?? []), ...newHelper].join(' ') || 'none'}; new /tmp leftovers: ${newTmp.length ? newTmp.join(' ') : 'none'}`,
    `        manager/dockerd dirs removed: ${report.checks.managerDirRemoved ?? 'n/a'}/${report.checks.dockerdDirRemoved ?? 'n/a'}; manager run dirs left: ${(report.checks.managerRunDirLeft as string[] | undefined)?.length ?? 'n/a'}; ` +
      `rootfs mounts left after dockerd stop: ${(report.checks.mountsUnderManagerDir as string[] | undefined)?.length ?? 'n/a'}; manager error log lines: ${report.checks.managerLogErrors ?? 'n/a'}`,
    `Total ${report.durationS.toFixed(0)} s. Full data: ${REPORT}`,
  );
  console.log(out.join('\n'));
  writeFileSync(REPORT, JSON.stringify(rounded(report), null, 2) + '\n');
  return harnessBroke ? 1 : 0;
}

// Exit explicitly: the dockerd helper's stop() leaves a 30 s sleep() timer pending (its waitExit race),
// which would otherwise keep the process alive after the report.
process.exit(await main());
