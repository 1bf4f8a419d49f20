#!/usr/bin/env bash
# Installs everything switchboard needs on a Debian machine, idempotently:
# the Debian packages (one apt-get update, only when something is missing)
# and the npm test tooling pinned by package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libuv1-dev libmicrohttpd-dev libgnutls28-dev libjansson-dev libyaml-dev libsodium-dev
  libsqlite3-dev libcurl4-openssl-dev libcmocka-dev libcjose-dev libjemalloc-dev
  libpcre2-dev
  curl wrk nodejs npm sqlite3 openssl
)

missing=()
for p in "${packages[@]}"; do
  # nodejs/npm may come from elsewhere (e.g. a newer Node.js already on PATH)
  if [[ $p == nodejs ]] && command -v node >/dev/null; then continue; fi
  if [[ $p == npm ]] && command -v npm >/dev/null; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 20)); then
  echo "setup: Node.js >= 20 is required by the MCP TypeScript SDKs (found $(node --version))" >&2
  exit 1
fi

# The test tooling: official MCP SDKs and reference servers, pinned. npm ci
# only when the lock file changed since the last install (its hash is kept
# beside node_modules), so concurrent test runs never see it half-installed.
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -d node_modules ]] || [[ $(cat node_modules/.switchboard-lock-hash 2>/dev/null) != "$lock_hash" ]]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.switchboard-lock-hash
fi
