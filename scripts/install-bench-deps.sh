#!/usr/bin/env bash
# Installs the peers and load tools the benchmarks (bench/, `npm run bench`) compare weft
# with: nginx, HAProxy, wrk, h2load (nghttp2-client), openssl. Not needed for `npm test`.
# The packaged services are not started: the benchmark runs its own instances.
set -euo pipefail
packages=(nginx libnginx-mod-stream haproxy wrk nghttp2-client openssl procps util-linux)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# Keep the packages' init scripts from starting system-wide nginx/haproxy on install.
policy=/usr/sbin/policy-rc.d
created=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  created=1
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
[ "$created" -eq 1 ] && $SUDO rm -f "$policy"
exit 0
