import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { install, uninstall } from '../../cli/install.ts';

describe('eci install / uninstall', () => {
  let dir: string;
  const paths = () => ({ daemonJson: join(dir, 'etc/docker/daemon.json'), unitDir: join(dir, 'systemd'), stateFile: join(dir, 'state/install.json'), repo: '/opt/eci' });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps existing keys, is idempotent, and uninstall undoes exactly that', () => {
    dir = mkdtempSync(join(tmpdir(), 'eci-install-'));
    const p = paths();
    mkdirSync(join(dir, 'etc/docker'), { recursive: true });
    writeFileSync(p.daemonJson, JSON.stringify({ 'log-driver': 'json-file', runtimes: { other: { path: '/x' } } }));
    const before = readFileSync(p.daemonJson, 'utf8');
    expect(install(p).length).toBe(2);
    const cfg = JSON.parse(readFileSync(p.daemonJson, 'utf8'));
    expect(cfg).toEqual({ 'log-driver': 'json-file', runtimes: { other: { path: '/x' }, eci: { path: '/opt/eci/bin/eci-runc' } } });
    expect(readFileSync(join(p.unitDir, 'eci.service'), 'utf8')).toContain('ExecStart=/opt/eci/bin/eci daemon');
    expect(install(p)).toEqual([]); // idempotent
    expect(uninstall(p).length).toBe(2);
    expect(JSON.parse(readFileSync(p.daemonJson, 'utf8'))).toEqual(JSON.parse(before));
    expect(existsSync(join(p.unitDir, 'eci.service'))).toBe(false);
    expect(uninstall(p)).toEqual([]); // idempotent
  });

  it('puts back an earlier "eci" runtime and removes a daemon.json it created', () => {
    dir = mkdtempSync(join(tmpdir(), 'eci-install-'));
    const p = paths();
    install(p);
    expect(existsSync(p.daemonJson)).toBe(true);
    uninstall(p);
    expect(existsSync(p.daemonJson)).toBe(false);
    mkdirSync(join(dir, 'etc/docker'), { recursive: true });
    writeFileSync(p.daemonJson, JSON.stringify({ runtimes: { eci: { path: '/old/eci' } } }));
    install(p);
    uninstall(p);
    expect(JSON.parse(readFileSync(p.daemonJson, 'utf8'))).toEqual({ runtimes: { eci: { path: '/old/eci' } } });
  });

  it('refuses a malformed daemon.json and changes nothing', () => {
    dir = mkdtempSync(join(tmpdir(), 'eci-install-'));
    const p = paths();
    install(p);
    writeFileSync(p.daemonJson, '{ "runtimes": ');
    rmSync(p.stateFile, { force: true });
    expect(() => install(p)).toThrow(/daemon.json: not valid JSON .*nothing was changed/);
    expect(readFileSync(p.daemonJson, 'utf8')).toBe('{ "runtimes": ');
  });

  it('creates the readers\' group if missing, and uninstall removes it only if install made it', () => {
    dir = mkdtempSync(join(tmpdir(), 'eci-install-'));
    const groups = new Set<string>();
    const ops = { exists: (n: string) => groups.has(n), create: (n: string) => void groups.add(n), remove: (n: string) => void groups.delete(n) };
    const p = { ...paths(), group: { name: 'eci', ops } };
    expect(install(p)).toContainEqual(expect.stringMatching(/^group eci: created \(its members may read eci's events: usermod -aG eci USER/));
    expect(groups.has('eci')).toBe(true);
    expect(install(p)).toEqual([]); // idempotent
    expect(uninstall(p)).toContain('group eci: removed (eci install had created it)');
    expect(groups.has('eci')).toBe(false);
    // A group that was there before is the administrator's: kept.
    groups.add('eci');
    install(p);
    uninstall(p);
    expect(groups.has('eci')).toBe(true);
    // A group that cannot be made: one line.
    groups.clear();
    const failing = { ...ops, create: () => { throw new Error('groupadd: Permission denied.\nmore'); } };
    expect(() => install({ ...p, group: { name: 'eci', ops: failing } })).toThrow(/^cannot create group eci \(groupadd: Permission denied\.\)$/);
  });
});
