import { describe, expect, it } from 'vitest';
import { parseRuncArgs, runcStateDir } from '../../actors/runc/cli.ts';

describe('parseRuncArgs', () => {
  it('parses the containerd shim create call', () => {
    const c = parseRuncArgs(['--root', '/run/docker/runtime-runc/moby', '--log', '/b/log.json', '--log-format', 'json',
      'create', '--bundle', '/b', '--pid-file', '/b/init.pid', '--console-socket', '/tmp/c.sock', 'abc123']);
    expect(c).toMatchObject({ root: '/run/docker/runtime-runc/moby', log: '/b/log.json', logFormat: 'json', command: 'create', bundle: '/b', id: 'abc123' });
    expect(c.global).toEqual(['--root', '/run/docker/runtime-runc/moby', '--log', '/b/log.json', '--log-format', 'json']);
  });
  it("keeps create's --pid-file (Podman's names its per-container run dir), and --pid-file=value", () => {
    expect(parseRuncArgs(['create', '--bundle', '/b', '--pid-file', '/run/x/userdata/pidfile', 'id1']).pidFile).toBe('/run/x/userdata/pidfile');
    expect(parseRuncArgs(['run', '--pid-file=/p', 'id1']).pidFile).toBe('/p');
    expect(parseRuncArgs(['exec', '--pid-file', '/p', 'id1', 'true']).pidFile).toBeUndefined();
  });
  it('accepts --flag=value, short flags and unknown global flags', () => {
    const c = parseRuncArgs(['--root=/r', '--systemd-cgroup', '--weird-flag', 'run', '-b', 'bundle', '-d', 'x']);
    expect(c).toMatchObject({ root: '/r', command: 'run', bundle: 'bundle', detach: true, id: 'x' });
    expect(c.global).toContain('--weird-flag');
  });
  it('finds the id of delete --force and of exec with its flags', () => {
    expect(parseRuncArgs(['delete', '--force', 'c1'])).toMatchObject({ command: 'delete', force: true, id: 'c1' });
    expect(parseRuncArgs(['exec', '--process', '/tmp/p.json', '--detach', '--pid-file', '/p', 'c2'])).toMatchObject({ command: 'exec', id: 'c2' });
    expect(parseRuncArgs(['exec', '-t', 'c3', 'sh', '-c', 'x'])).toMatchObject({ id: 'c3' });
  });
  it('keeps unknown commands for runc to judge', () => {
    const c = parseRuncArgs(['frobnicate', 'x']);
    expect(c.command).toBe('frobnicate');
    expect(c.id).toBeUndefined();
    expect(c.args).toEqual(['x']);
  });
  it('refuses ids that cannot be subject tokens and flags without values', () => {
    expect(() => parseRuncArgs(['create', 'a.b'])).toThrow(/invalid container id "a.b"/);
    expect(() => parseRuncArgs(['create', '--bundle'])).toThrow(/needs a value/);
    expect(() => parseRuncArgs(['--root'])).toThrow('flag "--root" needs a value');
    // Found by the fuzzer: commands named like Object.prototype members are unknown commands.
    expect(parseRuncArgs(['toString', '-d']).command).toBe('toString');
    expect(parseRuncArgs(['__proto__', '--bundle']).command).toBe('__proto__');
  });
  it('knows where runc keeps state', () => {
    expect(runcStateDir(undefined, 'x')).toBe('/run/runc/x');
    expect(runcStateDir('/r', 'x')).toBe('/r/x');
  });
});
