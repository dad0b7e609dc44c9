#!/usr/bin/env bash
# One command to run the whole test suite on a fresh Debian 12 machine: installs what is
# missing, then runs lint, types and pytest against real PostgreSQL, SoftHSM and HTTP.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/bootstrap.sh"
cd "$root"
.venv/bin/ruff check .
.venv/bin/mypy idservice hsm
exec .venv/bin/pytest "$@"
