#!/usr/bin/env bash
# Re-extract the texts people read (web templates, idservice/web/*.py, the office tool:
# _(), N_(), {% trans %})
# and merge them into the catalogues idservice/locale/{vi,en}/LC_MESSAGES/messages.po.
# Then translate the new or changed Vietnamese entries (they come back empty or "fuzzy":
# tests/unit/web/test_i18n.py fails until each has a reviewed translation). Nothing is compiled
# here: the service compiles the .po files in memory when it starts (idservice/web/i18n.py).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
pot="$(mktemp --suffix=.pot)"
trap 'rm -f "$pot"' EXIT
.venv/bin/pybabel extract -F babel.cfg -k _ -k N_ -k gettext -k ngettext:1,2 --no-location \
  --sort-output --project=idservice -o "$pot" . >/dev/null 2>&1
for lang in vi en; do
  po="idservice/locale/$lang/LC_MESSAGES/messages.po"
  if [ -f "$po" ]; then
    .venv/bin/pybabel update -i "$pot" -d idservice/locale -l "$lang" --no-wrap \
      --ignore-obsolete >/dev/null
  else
    .venv/bin/pybabel init -i "$pot" -d idservice/locale -l "$lang" --no-wrap >/dev/null
  fi
done
echo "catalogues updated: idservice/locale/{vi,en}/LC_MESSAGES/messages.po"
