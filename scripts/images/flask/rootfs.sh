#!/usr/bin/env bash
# Builds the flask example's Debian 12 root filesystem layer:
#
#   scripts/images/flask/rootfs.sh DEST
#
# debootstrap --variant=minbase bookworm with python3, python3-flask and gunicorn from the
# machine's configured Debian mirror (the first http(s) URI of /etc/apt/sources.list* that
# serves "debian"; override with SKIFF_DEBIAN_MIRROR), then trimmed: docs, man pages,
# locales, apt lists and caches, logs, /dev nodes, glibc's iconv modules, Python's
# pydoc/idle/2to3/ensurepip/tkinter, setuid bits. Writes DEST (tar.gz, entries sorted,
# owned 0:0, mtime 0, gzip -n) and DEST.diffid (sha256 of the uncompressed tar).
# Needs root (debootstrap chroots). Takes a few minutes; scripts/images/build.sh caches the
# result keyed by this script's hash.
set -euo pipefail
umask 022
export LC_ALL=C

die() {
  echo "images/flask/rootfs.sh: $*" >&2
  exit 1
}
log() { echo "images/flask/rootfs.sh: $*" >&2; }

dest="${1:?usage: rootfs.sh DEST}"
[[ "$(id -u)" == 0 ]] || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"

mirror="${SKIFF_DEBIAN_MIRROR:-}"
if [[ -z "$mirror" ]]; then
  mirror="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
    awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\/.*\/debian\/?$/) { print $i; exit } }')"
fi
if [[ -z "$mirror" ]]; then
  mirror="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\/.*\/debian\/?$/) { print $i; exit } }')"
fi
[[ -n "$mirror" ]] || die "no Debian mirror in /etc/apt/sources.list* (set SKIFF_DEBIAN_MIRROR)"

work="$(mktemp -d "${dest%/*}/rootfs.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/root"
start=$SECONDS
log "debootstrap bookworm from $mirror"
debootstrap --variant=minbase --include=python3,python3-flask,gunicorn \
  --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
  bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
log "debootstrap took $((SECONDS - start)) s"

# Trim what a server never reads.
rm -rf "$root"/usr/share/{doc,man,info,locale,lintian,linda,bug,common-licenses} \
  "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old "$root"/var/lib/apt/lists/* \
  "$root"/var/log/* "$root"/tmp/* "$root"/var/tmp/* "$root"/root/.??*
# glibc's iconv modules (Python has its own codecs) and Python's tooling, never imported by
# a server.
rm -rf "$root"/usr/lib/x86_64-linux-gnu/gconv \
  "$root"/usr/lib/python3.11/{pydoc_data,idlelib,lib2to3,ensurepip,tkinter,turtledemo}
find "$root/dev" -mindepth 1 -delete  # the runtime mounts its own /dev
# No setuid/setgid programs: nothing in the instance may gain privileges.
find "$root" -xdev -type f -perm /6000 -exec chmod ug-s {} +
# The packages' postinst (py3compile) already byte-compiled them: nothing is compiled (or
# written) at run time.
test -n "$(find "$root/usr/lib/python3/dist-packages/flask" -name '*.pyc' -print -quit)" ||
  die "flask is not byte-compiled in the rootfs"
# Files whose contents carry the build time or host.
rm -f "$root"/etc/machine-id "$root"/var/lib/dbus/machine-id "$root"/etc/hostname \
  "$root"/var/cache/ldconfig/aux-cache
: >"$root/etc/hostname"

(cd "$root" && find . -mindepth 1 -printf '%P\n' | sort) |
  tar -C "$root" --no-recursion -T - --mtime=@0 --owner=0 --group=0 --numeric-owner \
    --format=gnu -cf "$work/layer.tar"
sha256sum <"$work/layer.tar" | cut -d' ' -f1 >"$work/layer.diffid"
gzip -n -6 <"$work/layer.tar" >"$work/layer.tar.gz"
mv -f "$work/layer.diffid" "$dest.diffid"
mv -f "$work/layer.tar.gz" "$dest"
log "rootfs layer: $(($(stat -c %s "$work/layer.tar") / 1024 / 1024)) MiB tar," \
  "$(($(stat -c %s "$dest") / 1024 / 1024)) MiB gzipped, $((SECONDS - start)) s in all"
