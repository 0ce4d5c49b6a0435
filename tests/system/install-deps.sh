#!/usr/bin/env bash
# Installs what the tests need beyond Python packages, from Debian's packages, only when missing.
# Run by `make test` (as root in CI); a green run must never depend on something installed by hand.
# Add a line to NEEDS (command → package) when a test needs another program (or the benchmark:
# sqlite3 and psql write the engines' own CSV that bench/exports.py compares the service with).
set -euo pipefail
declare -A NEEDS=(
  [promtool]=prometheus
  [prometheus]=prometheus
  [chromium]=chromium
  [curl]=curl
  [wrk]=wrk
  [nginx]=nginx
  [sqlite3]=sqlite3
  [psql]=postgresql-client
  [ip]=iproute2  # `ip netns`: the cluster test's three hosts (loadtests/netns.py)
)
missing=()
for cmd in "${!NEEDS[@]}"; do
  # /usr/sbin and /sbin too: iproute2's `ip` lives there, off a non-root user's PATH.
  command -v "$cmd" >/dev/null 2>&1 || [[ -x /usr/sbin/$cmd || -x /sbin/$cmd ]] ||
    missing+=("${NEEDS[$cmd]}")
done
((${#missing[@]})) || exit 0
packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
if [[ $(id -u) -ne 0 ]]; then
  echo "tests need: $packages — run as root or: sudo apt-get install -y $packages" >&2
  exit 1
fi
echo "installing system packages for the tests: $packages"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
# shellcheck disable=SC2086
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $packages >/dev/null
