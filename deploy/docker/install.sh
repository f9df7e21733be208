#!/usr/bin/env bash
# Installs Bamboo into PREFIX: the application in PREFIX/lib/bamboo (the same tree the Debian package
# ships in /opt/bamboo) and the `bamboo` command as PREFIX/bin/bamboo. The container image RUNs this;
# the tests run it into a temporary prefix. Needs node and npm, and the dev dependencies in the
# checkout for the TypeScript build (`npm ci`), unless BAMBOO_SKIP_BUILD=1 reuses an existing dist/.
#
# Usage: bash deploy/docker/install.sh PREFIX      (prints PREFIX/bin/bamboo)
set -euo pipefail
umask 022

[ $# -eq 1 ] || { echo "usage: $0 PREFIX" >&2; exit 1; }
deploy="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="$1"
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"

bash "$deploy/lib/stage-app.sh" "$prefix/lib/bamboo"
mkdir -p "$prefix/bin"
# Relative, so the tree can be copied elsewhere (COPY --from=build in the Dockerfile).
ln -sfn ../lib/bamboo/bin/bamboo.js "$prefix/bin/bamboo"
install -D -m 0755 "$deploy/docker/entrypoint.sh" "$prefix/lib/bamboo/share/docker/entrypoint.sh"
install -D -m 0644 "$deploy/docker/healthcheck.mjs" "$prefix/lib/bamboo/share/docker/healthcheck.mjs"

"$prefix/bin/bamboo" --help >/dev/null
echo "$prefix/bin/bamboo"
