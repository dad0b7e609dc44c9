#!/usr/bin/env bash
# Installs everything idservice needs on a fresh Debian 12 machine (run as root, or with sudo
# available): Debian packages, then a virtual environment with the project in editable mode.
# Safe to run again: it only installs what is missing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# chromium: the auditor UI's end-to-end test drives it headless (Playwright, executable_path).
# nginx, docker-compose: tests/deploy checks deploy/ with `nginx -t` and `docker-compose config`.
# postgresql: Debian's server; the suite's second run (IDSERVICE_TEST_PG=debian) and the
# failover test (tests/ha) create their own clusters with its binaries, not its `main` cluster.
debs=(softhsm2 opensc chromium nginx docker-compose postgresql)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v python3 >/dev/null || missing+=(python3 python3-venv)
# npm (Debian's, unless a Node.js with its own npm is there): installs axe-core
# (tests/ui/package.json), which the web UI tests inject into each page.
command -v npm >/dev/null || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
  $sudo apt-get update -qq
  # Only the nginx binary is wanted: keep its package from starting a server on port 80
  # (policy-rc.d, Debian's way to install without starting services), unless one is in place.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod 0755 "$policy"
  fi
  status=0
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null || status=$?
  [ -z "$policy" ] || $sudo rm -f "$policy"
  [ "$status" -eq 0 ] || exit "$status"
fi

stamp=.venv/.installed
if [ ! -x .venv/bin/python ] || [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: preparing .venv" >&2
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[dev]"
  touch "$stamp"
fi

# Test-only JavaScript (axe-core) into tests/ui/node_modules, exactly as tests/ui/package-lock.json
# pins it; nothing of it is served by the application.
ui_stamp=tests/ui/node_modules/.installed
if [ ! -f "$ui_stamp" ] || [ tests/ui/package-lock.json -nt "$ui_stamp" ]; then
  echo "bootstrap: installing tests/ui (axe-core)" >&2
  npm ci --prefix tests/ui --no-audit --no-fund --loglevel=error >/dev/null
  touch "$ui_stamp"
fi
