import { describe, expect, it } from 'vitest';
import { parseCap, parseMemory, parseRunArgs, parseVolume } from '../../cli/run/flags.ts';
import { buildSpec, capabilities, DEFAULT_CAPS, mergeEnv } from '../../cli/run/spec.ts';
import { CAP_NAMES } from '../../actors/runc/caps.ts';
import { defaultSeccomp } from '../../cli/run/seccomp.ts';

describe('parseRunArgs', () => {
  it('reads Docker-style flags up to the image; the rest is the command, flags included', () => {
    const o = parseRunArgs(['-it', '--rm', '--name=c1', '-v', '/a:/b:ro', '-e', 'K=V', '-w/tmp', '--memory', '512m', '--cap-add', 'net_admin,SYS_TIME', '--cap-drop', 'ALL', 'busybox', 'ls', '-h', '--rm']);
    expect(o).toMatchObject({
      interactive: true, tty: true, rm: true, name: 'c1', volumes: [{ source: '/a', destination: '/b', readonly: true }],
      env: ['K=V'], workdir: '/tmp', memory: 512 * 1024 * 1024, capAdd: ['CAP_NET_ADMIN', 'CAP_SYS_TIME'], capDrop: ['ALL'],
      image: 'busybox', cmd: ['ls', '-h', '--rm'], help: false,
    });
  });
  it('collects host namespaces (refused later by the manager) and ignores --userns=host', () => {
    const o = parseRunArgs(['--pid=host', '--ipc', 'host', '--uts=host', '--network', 'host', '--userns=host', 'img']);
    expect(o.hostNamespaces).toEqual(['pid', 'ipc', 'uts', 'network']);
    expect(parseRunArgs(['--network', 'none', '--net=none', 'img']).hostNamespaces).toEqual([]);
  });
  it('-h before the image is help; after it, the command\'s', () => {
    expect(parseRunArgs(['-h']).help).toBe(true);
    expect(parseRunArgs(['--help']).help).toBe(true);
  });
  it('names bad input in one line', () => {
    expect(() => parseRunArgs([])).toThrow('"eci run" requires at least 1 argument');
    expect(() => parseRunArgs(['--nope', 'i'])).toThrow('unknown flag: --nope');
    expect(() => parseRunArgs(['-x', 'i'])).toThrow("unknown shorthand flag: 'x' in -x");
    expect(() => parseRunArgs(['-d', 'i'])).toThrow('-d/--detach is not supported');
    expect(() => parseRunArgs(['--name'])).toThrow('flag --name needs a value');
    expect(() => parseRunArgs(['--name', 'a/b', 'i'])).toThrow('invalid container name "a/b"');
    expect(() => parseRunArgs(['--network', 'bridge', 'i'])).toThrow(/no network bridge/);
    expect(() => parseRunArgs(['--pid', 'container:x', 'i'])).toThrow('invalid --pid "container:x"');
    expect(() => parseRunArgs(['-u', 'alice', 'i'])).toThrow(/--user "alice"/);
    expect(() => parseRunArgs(['-u', '70000', 'i'])).toThrow(/0..65535/);
    expect(() => parseRunArgs(['-w', 'rel', 'i'])).toThrow(/must be absolute/);
    expect(() => parseRunArgs(['--rm=maybe', 'i'])).toThrow(/expected true or false/);
  });
  it('parses volumes, memory and capabilities', () => {
    expect(parseVolume('/h:/c')).toEqual({ source: '/h', destination: '/c', readonly: false });
    expect(() => parseVolume('name:/c')).toThrow(/named volumes are not supported/);
    expect(() => parseVolume('/h:c')).toThrow(/must be absolute/);
    expect(() => parseVolume('/h:/c:z')).toThrow(/only modes are ro and rw/);
    expect(parseMemory('1g')).toBe(1024 ** 3);
    expect(parseMemory('7340032')).toBe(7340032);
    expect(() => parseMemory('5m')).toThrow('the minimum is 6m');
    expect(() => parseMemory('lots')).toThrow(/invalid --memory/);
    expect(parseCap('cap_chown')).toBe('CAP_CHOWN');
    expect(parseCap('all')).toBe('ALL');
    expect(() => parseCap('FLY')).toThrow('unknown capability "FLY"');
  });
});

describe('buildSpec', () => {
  const opts = (argv: string[]) => parseRunArgs(argv);
  const spec = (argv: string[], image = {}) => buildSpec({ id: 'eci-0123456789abcdef', opts: opts(argv), image, hostnameFile: '/b/hostname', hostsFile: '/b/hosts' });

  it("is Docker's default: caps, masked/readonly paths, /dev, mounts, PATH, hostname, every namespace but user", () => {
    const s = spec(['busybox', 'sh']) as Record<string, any>;
    expect(s.process.args).toEqual(['sh']);
    expect(s.process.capabilities.bounding).toEqual(DEFAULT_CAPS);
    expect(s.process.env).toEqual(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOSTNAME=eci-01234567']);
    expect(s.hostname).toBe('eci-01234567');
    expect(s.linux.namespaces.map((n: { type: string }) => n.type)).toEqual(['pid', 'network', 'ipc', 'uts', 'mount', 'cgroup']);
    expect(s.linux.maskedPaths).toContain('/proc/kcore');
    expect(s.linux.readonlyPaths).toContain('/proc/sysrq-trigger');
    expect(s.mounts.map((m: { destination: string }) => m.destination)).toEqual(['/proc', '/dev', '/dev/pts', '/sys', '/sys/fs/cgroup', '/dev/mqueue', '/dev/shm', '/etc/hostname', '/etc/hosts']);
    expect(s.process.terminal).toBe(false);
    expect(s.process.user).toEqual({ uid: 0, gid: 0 });
  });
  it('applies the flags: host namespaces dropped, volumes, tty, memory, user, privileged', () => {
    const s = spec(['--pid=host', '-t', '-v', '/h:/c:ro', '-m', '64m', '-u', '1000:100', '-e', 'A=1', 'img', 'x']) as Record<string, any>;
    expect(s.linux.namespaces.map((n: { type: string }) => n.type)).not.toContain('pid');
    expect(s.mounts.at(-1)).toEqual({ destination: '/c', type: 'bind', source: '/h', options: ['rbind', 'rprivate', 'ro'] });
    expect(s.process.terminal).toBe(true);
    expect(s.process.env).toEqual(expect.arrayContaining(['TERM=xterm', 'A=1']));
    expect(s.linux.resources.memory).toEqual({ limit: 64 * 1024 * 1024 });
    expect(s.process.user).toEqual({ uid: 1000, gid: 100 });
    const p = spec(['--privileged', 'img', 'x']) as Record<string, any>;
    expect(p.process.capabilities.bounding).toEqual([...CAP_NAMES]);
    expect(p.linux.maskedPaths).toBeUndefined();
    expect(p.mounts.find((m: { destination: string }) => m.destination === '/sys').options).not.toContain('ro');
  });
  it("uses the image's entrypoint, cmd, env and workdir unless the flags say otherwise", () => {
    const image = { entrypoint: ['/init'], cmd: ['serve'], env: ['PATH=/opt/bin', 'A=image'], workingDir: '/srv' };
    const s = spec(['-e', 'A=flag', 'img'], image) as Record<string, any>;
    expect(s.process.args).toEqual(['/init', 'serve']);
    expect(s.process.env).toEqual(['HOSTNAME=eci-01234567', 'PATH=/opt/bin', 'A=flag']);
    expect(s.process.cwd).toBe('/srv');
    expect((spec(['img', 'other'], image) as Record<string, any>).process.args).toEqual(['/init', 'other']);
    expect((spec(['--entrypoint', 'sh', 'img'], image) as Record<string, any>).process.args).toEqual(['sh']);
    expect(() => spec(['img'])).toThrow('no command specified');
  });
  it('cap-add/drop follow Docker (drop ALL first, adds win)', () => {
    expect(capabilities(opts(['--cap-drop', 'ALL', '--cap-add', 'CHOWN', 'i']))).toEqual(['CAP_CHOWN']);
    expect(capabilities(opts(['--cap-drop', 'MKNOD', 'i']))).not.toContain('CAP_MKNOD');
    expect(capabilities(opts(['--cap-add', 'ALL', 'i']))).toEqual([...CAP_NAMES]);
    expect(mergeEnv(['A=1', 'B=2'], ['A=3'])).toEqual(['A=3', 'B=2']);
  });
});

describe('defaultSeccomp', () => {
  type Rule = { names: string[]; action: string; errnoRet?: number; args?: { value: number }[] };
  const rules = (caps: string[]) => (defaultSeccomp(caps) as { syscalls: Rule[] }).syscalls;
  const denied = (caps: string[]) => rules(caps)[0].names;
  it('refuses nested namespaces and Docker\'s capability-gated syscalls unless the capability is held', () => {
    expect((defaultSeccomp(DEFAULT_CAPS) as { defaultAction?: string } | undefined)?.defaultAction).toBe('SCMP_ACT_ALLOW');
    expect(denied(DEFAULT_CAPS)).toEqual(expect.arrayContaining(['unshare', 'setns', 'keyctl', 'bpf', 'reboot', 'init_module']));
    const clone = rules(DEFAULT_CAPS).filter((r) => r.names[0] === 'clone');
    expect(clone.map((r) => r.args![0].value)).toContain(0x10000000); // CLONE_NEWUSER
    expect(rules(DEFAULT_CAPS).find((r) => r.names[0] === 'clone3')?.errnoRet).toBe(38);
    const admin = [...DEFAULT_CAPS, 'CAP_SYS_ADMIN'];
    expect(denied(admin)).not.toContain('unshare');
    expect(denied(admin)).toContain('keyctl'); // never allowed
    expect(rules(admin).some((r) => r.names[0] === 'clone' || r.names[0] === 'clone3')).toBe(false);
    // The mount family is left to eci's vetting (notify rules added by the manager).
    expect(denied([])).not.toEqual(expect.arrayContaining(['mount']));
  });
  it('is in every unprivileged spec, not in a privileged one', () => {
    const s = (argv: string[]) => buildSpec({ id: 'x', opts: parseRunArgs(argv), image: {}, hostnameFile: '/h', hostsFile: '/h' }) as Record<string, any>;
    expect(s(['i', 'sh']).linux.seccomp.syscalls[0].names).toContain('unshare');
    expect(s(['--cap-add', 'SYS_ADMIN', 'i', 'sh']).linux.seccomp.syscalls[0].names).not.toContain('unshare');
    expect(s(['--privileged', 'i', 'sh']).linux.seccomp).toBeUndefined();
  });
});
