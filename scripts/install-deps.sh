#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine: the Debian tools the end-to-end
# tests drive (iproute2 for network namespaces, tcpdump for captures, openssl, curl,
# redis, PostgreSQL: test/helpers/postgres.ts runs private servers from Debian's binaries,
# chromium and a font for the dashboard's browser test (driven by playwright-core),
# the system cluster the package sets up is not used), the benchmark peers (nginx,
# HAProxy, wrk: scripts/install-bench-deps.sh) and the npm packages (npm ci, which also
# builds dist/ through `prepare`).
set -euo pipefail
cd "$(dirname "$0")/.."

# g++, make and python3 build better-sqlite3 from source when npm cannot download its prebuilt binary.
packages=(iproute2 tcpdump openssl curl redis-server redis-tools nftables procps ca-certificates postgresql g++ make python3 chromium fonts-dejavu-core)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The benchmark peers: `npm test` runs the benchmark harness once in quick mode.
scripts/install-bench-deps.sh
npm ci --no-audit --no-fund
