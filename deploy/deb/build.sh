#!/usr/bin/env bash
# Builds the bamboo Debian package with dpkg-deb from this checkout and prints the .deb's path.
#
# Usage: bash deploy/deb/build.sh [OUTDIR]        (default OUTDIR: <repo>/build/deb)
#        npm run package:deb [-- OUTDIR]
# Env:   BAMBOO_DEB_VERSION   full Debian version (default: package.json version, "-" -> "~", + "-1")
#        BAMBOO_DEB_NODEJS    depends (default) | recommends: how the package asks for nodejs (>= 20).
#                             Use recommends where Node.js is not installed as a Debian package.
#        BAMBOO_SKIP_BUILD=1  package the existing dist/ instead of running `npm run build`
#        BAMBOO_DEB_COMPRESS  dpkg-deb compressor: xz (default, smallest), gzip or zstd (faster)
#
# Layout: /opt/bamboo (the app and its production node_modules), /usr/bin/bamboo (symlink),
# /etc/bamboo (conffiles: production.json, api.env, worker.env, worker-managed.env,
# haproxy.cfg.liquid), /lib/systemd/system/bamboo-{api,worker}.service,
# /opt/bamboo/share/systemd/bamboo-worker-managed.conf (managed-mode drop-in, to copy).
set -euo pipefail
umask 022

die() { echo "deb: $*" >&2; exit 1; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
deploy="$(dirname "$here")"
repo="$(dirname "$deploy")"
outdir="${1:-$repo/build/deb}"
mkdir -p "$outdir"
outdir="$(cd "$outdir" && pwd)"

command -v dpkg-deb >/dev/null || die "dpkg-deb is not installed"
arch="$(dpkg --print-architecture)"   # production node_modules hold a native addon (zeromq)

pkgver="$(node -p 'require(process.argv[1]).version' "$repo/package.json")"
version="${BAMBOO_DEB_VERSION:-${pkgver//-/\~}-1}"
case "${BAMBOO_DEB_NODEJS:-depends}" in
  # HAProxy is needed by both roles: the worker runs it, the api checks every rule with `haproxy -c`.
  depends)    depends="nodejs (>= 20), adduser, haproxy (>= 2.6)"; recommends="" ;;
  recommends) depends="adduser, haproxy (>= 2.6)";                 recommends="nodejs (>= 20)" ;;
  *) die "BAMBOO_DEB_NODEJS must be depends or recommends" ;;
esac

work="$(mktemp -d "${TMPDIR:-/tmp}/bamboo-deb.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/root"

# The application, exactly as the container image gets it.
bash "$deploy/lib/stage-app.sh" "$root/opt/bamboo"
install -D -m 0644 "$deploy/systemd/bamboo-worker-managed.conf" "$root/opt/bamboo/share/systemd/bamboo-worker-managed.conf"

mkdir -p "$root/usr/bin"
ln -s /opt/bamboo/bin/bamboo.js "$root/usr/bin/bamboo"

# Configuration (all conffiles). Permissions of the ones that may hold secrets are set by postinst
# through dpkg-statoverride (root:bamboo 0640), since the bamboo group does not exist yet here.
install -d -m 0755 "$root/etc/bamboo"
install -m 0640 "$deploy/production.example.json" "$root/etc/bamboo/production.json"
for f in api.env worker.env worker-managed.env; do
  install -m 0640 "$deploy/etc/$f" "$root/etc/bamboo/$f"
done
install -m 0644 "$repo/templates/haproxy.cfg.liquid" "$root/etc/bamboo/haproxy.cfg.liquid"

install -D -m 0644 "$deploy/systemd/bamboo-api.service" "$root/lib/systemd/system/bamboo-api.service"
install -D -m 0644 "$deploy/systemd/bamboo-worker.service" "$root/lib/systemd/system/bamboo-worker.service"

install -d "$root/usr/share/doc/bamboo"
cat > "$root/usr/share/doc/bamboo/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: bamboo-ts
Comment: Bamboo in TypeScript. The bundled Node.js modules in /opt/bamboo/node_modules carry their
 own licences in their directories.

Files: *
License: $(node -p 'require(process.argv[1]).license' "$repo/package.json")
COPYRIGHT

# Control area.
install -d "$root/DEBIAN"
for s in postinst prerm postrm; do install -m 0755 "$here/$s" "$root/DEBIAN/$s"; done
(cd "$root" && find etc -type f | sed 's|^|/|' | sort) > "$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -print0 | sed -z 's|^\./||' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
installed_size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
cat > "$root/DEBIAN/control" <<CONTROL
Package: bamboo
Version: $version
Architecture: $arch
Maintainer: ${BAMBOO_DEB_MAINTAINER:-Bamboo-TS maintainers <bamboo-ts@localhost>}
Installed-Size: $installed_size
Depends: $depends
${recommends:+Recommends: $recommends
}Suggests: zookeeper
Section: net
Priority: optional
Description: keeps HAProxy configured for every app on Mesos/Marathon
 Bamboo in TypeScript, a compatible successor of QubitProducts' Bamboo: the
 same REST API, ZooKeeper records, JSON configuration keys and environment
 variables. Two services: bamboo-api (stateless REST API, web UI, Marathon
 intake; run several) and bamboo-worker (one per HAProxy host: renders
 haproxy.cfg, validates it and reloads HAProxy without dropping connections).
 .
 The services are not started on installation: edit /etc/bamboo first, then
 systemctl enable --now bamboo-api (or bamboo-worker).
CONTROL

deb="$outdir/bamboo_${version}_${arch}.deb"
compress="${BAMBOO_DEB_COMPRESS:-xz}"
case "$compress" in xz|gzip|zstd|none) ;; *) die "BAMBOO_DEB_COMPRESS must be xz, gzip, zstd or none" ;; esac
dpkg-deb --root-owner-group "-Z$compress" --build "$root" "$deb" >/dev/null
echo "$deb"
