// The compatibility suite's cases that are one shell script in one fresh container of the Debian 12
// 'base' image, so several engines can run them. Each prints only what is the same on every run (no
// ids, times or host names); `want` is what runc must print, so a case broken under both runtimes
// does not pass by being equally broken.

export type Engine = 'docker' | 'podman' | 'ctr';

export interface ScriptCase {
  name: string;
  /** The engines that run it (ctr without `flags`: only where its defaults already give what they ask for). */
  engines: readonly Engine[];
  /** `docker run`/`podman run` flags the case needs. */
  flags?: string[];
  script: string;
  /** Lines runc's stdout must contain (and runc must exit 0). */
  want: string[];
}

/** A user `u1` with a home, made first by the cases that need a non-root user. */
const U1 = 'useradd -m u1';
const ALL: readonly Engine[] = ['docker', 'podman', 'ctr'];
const ENGINES: readonly Engine[] = ['docker', 'podman'];

export const SCRIPT_CASES: readonly ScriptCase[] = Object.freeze([
  {
    name: 'sudo as a non-root user',
    engines: ALL,
    script: `${U1}; echo 'u1 ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/u1
su u1 -c 'id -un; sudo -n true; echo sudo=$?; sudo -n id -un' 2>/dev/null`,
    want: ['u1', 'sudo=0', 'root'],
  },
  {
    name: 'su from root to a user and back',
    engines: ALL,
    script: `${U1}; echo root:Root-pass-1 | chpasswd
su u1 -c 'id -un; printf "Root-pass-1\\n" | su root -c "id -un"; echo su=$?'`,
    want: ['u1', 'root', 'su=0'],
  },
  {
    name: "passwd changes a user's password",
    engines: ALL,
    script: `${U1}; echo u1:Old-pass-1 | chpasswd
before=$(getent shadow u1 | cut -d: -f2)
su u1 -c 'printf "Old-pass-1\\nNew-pass-2\\nNew-pass-2\\n" | passwd >/dev/null 2>&1; echo passwd=$?'
[ "$before" != "$(getent shadow u1 | cut -d: -f2)" ] && echo shadow-changed
su u1 -c 'printf "New-pass-2\\n" | su u1 -c "echo login-with-new-password"'`,
    want: ['passwd=0', 'shadow-changed', 'login-with-new-password'],
  },
  {
    // ping_group_range "1 0" (the kernel's default, ctr's; Docker sets "0 2147483647") makes ping
    // need the raw socket, so only the file capability lets u1 ping.
    name: 'file capabilities (setcap cap_net_raw+ep)',
    engines: ALL,
    // --cap-add NET_RAW: Podman's default set lacks it, and a file capability outside the bounding
    // set makes exec fail (EPERM) under runc as under eci; Docker's default has it anyway.
    flags: ['--sysctl', 'net.ipv4.ping_group_range=1 0', '--cap-add', 'NET_RAW'],
    script: `${U1}; cp /usr/bin/ping /usr/local/bin/ping2; cp /usr/sbin/capsh /usr/local/bin/capsh2
setcap cap_net_raw+ep /usr/local/bin/ping2; setcap cap_net_raw+ep /usr/local/bin/capsh2; getcap /usr/local/bin/ping2
su u1 -c '/usr/local/bin/capsh2 --print | grep "^Current:"; /usr/local/bin/ping2 -c1 -W5 127.0.0.1 >/dev/null; echo ping=$?'`,
    want: ['/usr/local/bin/ping2 cap_net_raw=ep', 'Current: cap_net_raw=ep', 'ping=0'],
  },
  {
    name: 'dpkg -i of a package built in the container',
    engines: ALL,
    script: `set -e; p=/tmp/pkg; mkdir -p $p/DEBIAN $p/usr/share/eci-hello $p/usr/bin
printf 'Package: eci-hello\\nVersion: 1.0\\nArchitecture: all\\nMaintainer: eci <eci@example.org>\\nDescription: compat test\\n' > $p/DEBIAN/control
printf '#!/bin/sh\\nchown nobody /usr/share/eci-hello/owned\\n' > $p/DEBIAN/postinst; chmod 755 $p/DEBIAN/postinst
echo hello > $p/usr/share/eci-hello/greeting; echo o > $p/usr/share/eci-hello/owned
printf '#!/bin/sh\\necho hello from eci-hello\\n' > $p/usr/bin/eci-hello; chmod 4755 $p/usr/bin/eci-hello
dpkg-deb --root-owner-group --build $p /tmp/eci-hello.deb >/dev/null; dpkg -i /tmp/eci-hello.deb >/dev/null
dpkg-query -W -f='\${Package} \${Version} \${Status}\\n' eci-hello; eci-hello
stat -c '%a %U %n' /usr/bin/eci-hello /usr/share/eci-hello/greeting /usr/share/eci-hello/owned
dpkg -P eci-hello >/dev/null; dpkg-query -W eci-hello 2>/dev/null || echo purged; ls /usr/share/eci-hello 2>/dev/null || echo files-gone`,
    want: ['eci-hello 1.0 install ok installed', 'hello from eci-hello', '4755 root /usr/bin/eci-hello', '644 nobody /usr/share/eci-hello/owned', 'purged', 'files-gone'],
  },
  {
    name: 'user management (groupadd, useradd, usermod, userdel)',
    engines: ALL,
    script: `set -e; groupadd -g 2000 team; useradd -m -u 2001 -G team -s /bin/bash alice; usermod -aG users -c 'Alice A' alice
id alice; getent passwd alice; su alice -c 'echo mine > ~/f; mkdir ~/d'
stat -c '%U:%G %a %n' /home/alice /home/alice/f /home/alice/d
groupadd -g 2002 other; usermod -g other alice; stat -c '%U:%G %n' /home/alice/f
userdel -r alice 2>/dev/null; getent passwd alice || echo alice-gone; ls -A /home; groupdel team; getent group team || echo team-gone`,
    want: ['uid=2001(alice) gid=2001(alice) groups=2001(alice),100(users),2000(team)', 'alice:alice 644 /home/alice/f', 'alice:other /home/alice/f', 'alice-gone', 'team-gone'],
  },
  {
    name: 'busybox httpd on loopback, fetched with wget',
    engines: ALL,
    script: `mkdir -p /srv/www && echo hello-httpd > /srv/www/index.html && busybox httpd -p 127.0.0.1:8080 -h /srv/www || exit 1
for i in $(seq 100); do busybox wget -qO- http://127.0.0.1:8080/index.html 2>/dev/null && exit 0; sleep 0.1; done; echo httpd never answered; exit 1`,
    want: ['hello-httpd'],
  },
  {
    name: 'container root writes /etc/hosts, /etc/resolv.conf and /etc/hostname',
    engines: ENGINES,
    script: `echo '10.9.9.9 extra' >> /etc/hosts && tail -1 /etc/hosts; echo 'nameserver 10.9.9.8' > /etc/resolv.conf && cat /etc/resolv.conf
echo newname > /etc/hostname && cat /etc/hostname; stat -c '%U %a %n' /etc/hosts /etc/resolv.conf /etc/hostname`,
    want: ['10.9.9.9 extra', 'nameserver 10.9.9.8', 'newname', 'root 644 /etc/hosts'],
  },
  {
    name: '-v /etc/localtime:/etc/localtime:ro',
    engines: ENGINES,
    flags: ['-v', '/etc/localtime:/etc/localtime:ro'],
    script: `date +%Z; md5sum < /etc/localtime | cut -c1-32; (echo x > /etc/localtime) 2>/dev/null || echo read-only`,
    want: ['read-only'],
  },
  {
    name: 'meminfo with --memory',
    engines: ENGINES,
    flags: ['--memory', '256m'],
    script: `grep -E '^(MemTotal|MemFree|MemAvailable|Cached|Active|Inactive|SReclaimable):' /proc/meminfo`,
    want: [],
  },
  {
    name: '--init',
    engines: ENGINES,
    flags: ['--init'],
    script: `ps -o pid=,user=,comm= -p 1; [ $$ != 1 ] && echo shell-is-not-pid-1`,
    want: ['shell-is-not-pid-1'],
  },
  {
    // systemd and runc mount onto /proc/self/fd/N; eci vets the call as the caller sees that path.
    name: 'mount onto /proc/self/fd/N, a relative path and /proc/self/cwd (CAP_SYS_ADMIN)',
    engines: ENGINES,
    flags: ['--cap-add', 'SYS_ADMIN'],
    script: `mkdir /a /b; echo A > /a/f; echo B > /b/f; echo C > /a/g; exec 3</b/f
mount --bind /a/f /proc/self/fd/3; echo fd=$?; cat /b/f
cd /b && touch g && mount --bind /a/g g; echo relative=$?; cat /b/g
mount -t tmpfs tmp /proc/self/cwd; echo cwd=$?; ls -A /b | wc -l`,
    want: ['fd=0', 'A', 'relative=0', 'C', 'cwd=0', '0'],
  },
  {
    // Docker mounts /proc/sys read-only; eci serves its emulated entries writable, per container.
    name: 'sysctl -w fs.file-max',
    engines: ['docker'],
    script: `sysctl -w fs.file-max=100000 >/dev/null 2>&1; echo file-max=$?; cat /proc/sys/fs/file-max`,
    want: ['file-max=1'],
  },
  {
    name: 'mknod of a device',
    engines: ['docker'],
    script: `mknod /tmp/null c 1 3; echo mknod=$?`,
    want: ['mknod=0'],
  },
]);
