// `eci install` / `eci uninstall`: register eci with Docker (daemon.json "runtimes") and write a
// systemd unit for the manager, keeping every key already there; uninstall undoes exactly what
// install did (a previous "eci" runtime entry is put back). Both are idempotent.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { EciError } from '../actors/errors.ts';

export interface InstallPaths {
  daemonJson: string; // /etc/docker/daemon.json
  unitDir: string; // /etc/systemd/system
  stateFile: string; // /var/lib/eci/install.json
  repo: string; // where bin/eci and bin/eci-runc live
}

interface InstallState { daemonJson: string; previousRuntime?: unknown; createdDaemonJson: boolean; unit: string }

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
  rmSync(p.stateFile, { force: true });
  return changes;
}
