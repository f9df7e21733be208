#!/usr/bin/env bash
# Stages the runnable application into DEST: the compiled build (dist/), bin/, templates/, the UI and
# other non-TypeScript assets, docs, package.json + package-lock.json and the production dependencies
# (`npm ci --omit=dev`). Shared by the Debian package (deploy/deb/build.sh) and the container image
# (deploy/docker/install.sh), so both ship exactly the same tree.
#
# Usage: deploy/lib/stage-app.sh DEST
# Env:   BAMBOO_SKIP_BUILD=1   use the existing dist/ instead of running `npm run build`
#        BAMBOO_STAGE_CACHE    directory caching production node_modules per package-lock.json
#                              (default: <repo>/build/cache; set it empty to disable)
set -euo pipefail
umask 022

die() { echo "stage-app: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 DEST"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dest="$1"
case "$dest" in /*) ;; *) dest="$PWD/$dest" ;; esac
[ "$dest" != / ] || die "refusing to stage into /"

command -v node >/dev/null || die "node is not on PATH"
command -v npm >/dev/null || die "npm is not on PATH"

if [ "${BAMBOO_SKIP_BUILD:-}" != 1 ]; then
  echo "stage-app: npm run build" >&2
  (cd "$repo" && npm run build --silent >&2) || die "npm run build failed"
fi
[ -f "$repo/dist/cli/main.js" ] || die "no build in $repo/dist (run npm run build)"

rm -rf "$dest"
mkdir -p "$dest"

# The build, without tests, benchmarks, dev scripts and source maps (their sources are not shipped).
# dist/harness stays: `bamboo demo` runs the Marathon simulator and starts ZooKeeper through it.
tar -C "$repo" -cf - \
  --exclude='dist/bench' --exclude='dist/scripts' --exclude='dist/test' \
  --exclude='*.test.js' --exclude='*.map' \
  dist | tar -C "$dest" -xf -

# Files the processes read at run time next to the code (e.g. api/ui/index.html).
(cd "$repo" && find api worker common cli -type f ! -name '*.ts' ! -name '.*' 2>/dev/null) | while IFS= read -r f; do
  mkdir -p "$dest/$(dirname "$f")"
  cp "$repo/$f" "$dest/$f"
done

cp -R "$repo/templates" "$dest/templates"
mkdir -p "$dest/bin" "$dest/docs"
cp "$repo/bin/bamboo.js" "$dest/bin/bamboo.js"
cp "$repo/package.json" "$repo/package-lock.json" "$repo/README.md" "$dest/"
cp "$repo"/docs/*.md "$dest/docs/" 2>/dev/null || true
find "$dest" -type d -exec chmod 0755 {} +
find "$dest" -type f -exec chmod 0644 {} +
chmod 0755 "$dest/bin/bamboo.js"

# What Node.js never loads at run time: type declarations and TypeScript sources, source maps,
# markdown other than licences, CI folders, the packages' own test suites, and zeromq's prebuilt
# addons for other platforms. Halves the file count (and the time dpkg takes to unpack).
prune_node_modules() {
  local nm="$1" platform arch d
  find "$nm" -type f \( -name '*.ts' -o -name '*.mts' -o -name '*.cts' -o -name '*.map' \
    -o \( -iname '*.md' ! -iname 'licen*' ! -iname 'copying*' ! -iname 'notice*' \) \) -delete
  find "$nm" -type d -name .github -prune -exec rm -rf {} +
  find "$nm" -mindepth 2 -maxdepth 3 -type d \( -name test -o -name tests -o -name __tests__ \) \
    | grep -E "^$nm/(@[^/]+/)?[^@/][^/]*/(test|tests|__tests__)\$" | while IFS= read -r d; do rm -rf "$d"; done
  platform="$(node -p process.platform)"
  arch="$(node -p process.arch)"
  if [ -d "$nm/zeromq/build/$platform/$arch" ]; then
    for d in "$nm"/zeromq/build/*/ "$nm"/zeromq/build/"$platform"/*/; do
      case "$d" in "$nm/zeromq/build/$platform/" | "$nm/zeromq/build/$platform/$arch/") ;; *) rm -rf "$d" ;; esac
    done
  fi
}

# Production dependencies, exactly as locked. Install scripts are not run: zeromq ships prebuilt
# addons for linux x64/arm64 (glibc and musl), which is what it loads.
lock_hash="$(cat "$repo/package-lock.json" | sha256sum | cut -c1-16)"
key="node_modules-$lock_hash-node$(node -p 'process.versions.modules')-$(node -p 'process.platform + "-" + process.arch')"
cache="${BAMBOO_STAGE_CACHE-$repo/build/cache}"
if [ -n "$cache" ] && [ -d "$cache/$key" ]; then
  echo "stage-app: production node_modules from cache $cache/$key" >&2
  cp -a "$cache/$key" "$dest/node_modules"
else
  echo "stage-app: npm ci --omit=dev" >&2
  (cd "$dest" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >&2) || die "npm ci --omit=dev failed"
  prune_node_modules "$dest/node_modules"
  if [ -n "$cache" ]; then
    mkdir -p "$cache"
    tmp="$(mktemp -d "$cache/.tmp.XXXXXX")"
    cp -a "$dest/node_modules" "$tmp/node_modules"
    mv -T "$tmp/node_modules" "$cache/$key" 2>/dev/null || true
    rm -rf "$tmp"
  fi
fi

# Smoke test: the native addon loads and the CLI answers, from the staged tree alone.
(cd "$dest" && node --input-type=module -e "await import('zeromq')") || die "zeromq does not load from $dest"
node "$dest/bin/bamboo.js" --version >/dev/null || die "$dest/bin/bamboo.js --version failed"
echo "stage-app: staged $(du -sh "$dest" | cut -f1) into $dest" >&2
