#!/usr/bin/env bash
# One command to run idservice in dev mode on a fresh Debian 12 machine: installs what is
# missing (Debian packages, .venv), then starts embedded PostgreSQL + SoftHSM + the service.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/bootstrap.sh"
cd "$root"
exec .venv/bin/idservice dev "$@"
