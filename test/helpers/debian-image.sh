#!/usr/bin/env bash
# debian-image.sh FLAVOR OUT.tar: a Debian 12 (bookworm) root filesystem built by debootstrap from the
# mirror apt already uses, as a plain tarball (for `docker import`, `podman import`). Run under flock by
# debian-image.ts, which also keeps the result as a cache: nothing is rebuilt when OUT.tar exists.
set -euo pipefail
flavor=$1 out=$2
base=(busybox sudo libcap2-bin iputils-ping sqlite3 procps)
case $flavor in
  base) pkgs=("${base[@]}") ;;
  systemd) pkgs=("${base[@]}" systemd systemd-sysv dbus) ;;
  docker) pkgs=("${base[@]}" docker.io iptables ca-certificates) ;;
  *) echo "debian-image.sh: unknown flavor $flavor (base, systemd, docker)" >&2; exit 2 ;;
esac
[[ -s $out ]] && exit 0
# The mirror apt is configured with (deb822 sources first, then the one-line format).
mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1 || true)
[[ -n $mirror ]] || mirror=$(awk '$1=="deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[[ -n $mirror ]] || mirror=http://deb.debian.org/debian
work=$(mktemp -d "$(dirname "$out")/.build-$flavor.XXXXXX")
trap 'umount -R "$work/root" 2>/dev/null || true; rm -rf "$work"' EXIT
IFS=, ; inc="${pkgs[*]}"; unset IFS
debootstrap --variant=minbase --include="$inc" bookworm "$work/root" "$mirror" >"$work/log" 2>&1 || {
  tail -n 30 "$work/log" >&2; echo "debian-image.sh: debootstrap $flavor failed (log above)" >&2; exit 1; }
rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
tar --numeric-owner --xattrs --xattrs-include='*' -C "$work/root" -cf "$work/image.tar" .
mv "$work/image.tar" "$out"
