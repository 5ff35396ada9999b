// `eci install` / `eci uninstall`: register eci with Docker (daemon.json "runtimes") and write a
// systemd unit for the manager, keeping every key already there, and create the `eci` group (its
// members may read the event stream: the manager gives them the bus observer's credentials);
// uninstall undoes exactly what install did (a previous "eci" runtime entry is put back, the group
// is removed only if install created it). Both are idempotent.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { groupId } from '../bus/auth.ts';
import { EciError } from '../actors/errors.ts';

export interface InstallPaths {
  daemonJson: string; // /etc/docker/daemon.json
  unitDir: string; // /etc/systemd/system
  stateFile: string; // /var/lib/eci/install.json
  repo: string; // where bin/eci and bin/eci-runc live
  /** The readers' group (ECI_GROUP, default eci) and how to look it up, create and remove it. */
  group?: { name: string; ops: GroupOps };
}

export interface GroupOps { exists(name: string): boolean; create(name: string): void; remove(name: string): void }

/** The host's groups, through getent/groupadd/groupdel. */
export const hostGroups: GroupOps = {
  exists: (name) => groupId(name) !== undefined,
  create: (name) => { execFileSync('groupadd', ['--system', name], { stdio: ['ignore', 'ignore', 'pipe'] }); },
  remove: (name) => { execFileSync('groupdel', [name], { stdio: ['ignore', 'ignore', 'pipe'] }); },
};

interface InstallState { daemonJson: string; previousRuntime?: unknown; createdDaemonJson: boolean; unit: string; createdGroup?: string }

const UNIT = 'eci.service';

function readJson(path: string): Record<string, unknown> | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new EciError('EINSTALL', `${path}: cannot read (${(e as NodeJS.ErrnoException).code})`);
  }
  if (!text.trim()) return {};
  try {
    const v = JSON.parse(text);
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('expected a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new EciError('EINSTALL', `${path}: not valid JSON (${(e as Error).message}); nothing was changed`);
  }
}

function writeAtomic(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.eci-tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

export function unitText(repo: string): string {
  return `[Unit]
Description=eci manager (Enhanced Container Isolation)
Before=docker.service containerd.service
After=network.target

[Service]
ExecStart=${join(repo, 'bin/eci')} daemon
Restart=always
KillMode=process

[Install]
WantedBy=multi-user.target
`;
}

/** Returns the lines describing what changed (empty when everything was already in place). */
export function install(p: InstallPaths): string[] {
  const changes: string[] = [];
  const existing = readJson(p.daemonJson);
  const cfg = existing ?? {};
  const runtimes = (cfg.runtimes && typeof cfg.runtimes === 'object' ? cfg.runtimes : {}) as Record<string, unknown>;
  const want = { path: join(p.repo, 'bin/eci-runc') };
  const prior: InstallState | undefined = existsSync(p.stateFile) ? JSON.parse(readFileSync(p.stateFile, 'utf8')) : undefined;
  if (JSON.stringify(runtimes.eci) !== JSON.stringify(want)) {
    const state: InstallState = prior ?? { daemonJson: p.daemonJson, previousRuntime: runtimes.eci, createdDaemonJson: existing === undefined, unit: join(p.unitDir, UNIT) };
    writeAtomic(p.stateFile, JSON.stringify(state, null, 2) + '\n');
    writeAtomic(p.daemonJson, JSON.stringify({ ...cfg, runtimes: { ...runtimes, eci: want } }, null, 2) + '\n');
    changes.push(`${p.daemonJson}: runtime "eci" -> ${want.path} (restart dockerd to use it)`);
  } else if (!prior) {
    writeAtomic(p.stateFile, JSON.stringify({ daemonJson: p.daemonJson, previousRuntime: want, createdDaemonJson: false, unit: join(p.unitDir, UNIT) }, null, 2) + '\n');
  }
  const unit = join(p.unitDir, UNIT);
  const text = unitText(p.repo);
  if (!existsSync(unit) || readFileSync(unit, 'utf8') !== text) {
    writeAtomic(unit, text);
    changes.push(`${unit}: written (systemctl daemon-reload && systemctl enable --now ${UNIT})`);
  }
  if (p.group && !p.group.ops.exists(p.group.name)) {
    try {
      p.group.ops.create(p.group.name);
    } catch (e) {
      throw new EciError('EINSTALL', `cannot create group ${p.group.name} (${(e as Error).message.split('\n')[0]})`);
    }
    const state = JSON.parse(readFileSync(p.stateFile, 'utf8')) as InstallState;
    writeAtomic(p.stateFile, JSON.stringify({ ...state, createdGroup: p.group.name }, null, 2) + '\n');
    changes.push(`group ${p.group.name}: created (its members may read eci's events: usermod -aG ${p.group.name} USER; restart the manager)`);
  }
  return changes;
}

export function uninstall(p: InstallPaths): string[] {
  const changes: string[] = [];
  const state: InstallState | undefined = existsSync(p.stateFile) ? JSON.parse(readFileSync(p.stateFile, 'utf8')) : undefined;
  const cfg = readJson(p.daemonJson);
  if (cfg && cfg.runtimes && typeof cfg.runtimes === 'object' && 'eci' in (cfg.runtimes as object)) {
    const runtimes = { ...(cfg.runtimes as Record<string, unknown>) };
    if (state?.previousRuntime !== undefined) runtimes.eci = state.previousRuntime;
    else delete runtimes.eci;
    const next: Record<string, unknown> = { ...cfg, runtimes };
    if (!Object.keys(runtimes).length) delete next.runtimes;
    if (state?.createdDaemonJson && !Object.keys(next).length) {
      rmSync(p.daemonJson, { force: true });
      changes.push(`${p.daemonJson}: removed (eci install had created it)`);
    } else if (JSON.stringify(next) !== JSON.stringify(cfg)) {
      writeAtomic(p.daemonJson, JSON.stringify(next, null, 2) + '\n');
      changes.push(`${p.daemonJson}: runtime "eci" ${state?.previousRuntime !== undefined ? 'restored to what it was' : 'removed'}`);
    }
  }
  const unit = join(p.unitDir, UNIT);
  if (existsSync(unit)) {
    rmSync(unit, { force: true });
    changes.push(`${unit}: removed`);
  }
  if (state?.createdGroup && p.group && p.group.ops.exists(state.createdGroup)) {
    p.group.ops.remove(state.createdGroup);
    changes.push(`group ${state.createdGroup}: removed (eci install had created it)`);
  }
  rmSync(p.stateFile, { force: true });
  return changes;
}
