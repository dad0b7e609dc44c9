#!/usr/bin/env bash
# idservice on a bare Debian 12 server, without Ansible: run as root from a checkout of the
# project (`sudo deploy/install-debian.sh`). Idempotent: every step checks before it acts, so
# running it again upgrades the code, re-applies migrations and configuration, and keeps the
# database, the HSM keys and the secrets. docs/operations.md walks through it.
#
# Settings (environment variables; defaults in brackets):
#   SERVER_NAME        public host name                                  [$(hostname -f)]
#   IDSERVICE_ORIGIN   public origin officers sign                       [https://$SERVER_NAME]
#   WORKERS            `idservice serve --workers`                       [nproc]
#   PKCS11_MODULE      path of the HSM's PKCS#11 module; empty = SoftHSM in /var/lib/idservice
#   PKCS11_TOKEN_LABEL token label on the HSM                            [idservice]
#   TLS_CERT, TLS_KEY  certificate chain and key for nginx; if missing, a self-signed pair is made
#                      under /etc/idservice/tls (replace it before going live)
#   TRUST_ANCHORS, ISSUING_CAS, CRLS, CERT_POLICIES   officer-login PKI (contract 6.1), optional
# Secrets: /etc/idservice/secrets.env (root, 0600) holds OWNER_DB_PASSWORD, SERVICE_DB_PASSWORD,
# AUDITOR_DB_PASSWORD, ADMIN_DB_PASSWORD and HSM_USER_PIN (+ HSM_SO_PIN for SoftHSM); missing
# ones are generated (hex). /etc/idservice/admin.env (root, 0600) holds the URL the `operators`
# / `clients` commands connect with (the administrator role, never the service's). No secret
# ever appears on a command line (any local user can read those in ps or /proc/*/cmdline): they
# reach programs on standard input, in 0600 files, or in the
# environment of the one command that needs them (tests/deploy checks this script for it).
set -euo pipefail

[ "$(id -u)" -eq 0 ] || { echo "install-debian.sh: run as root" >&2; exit 1; }
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

SERVER_NAME="${SERVER_NAME:-$(hostname -f)}"
IDSERVICE_ORIGIN="${IDSERVICE_ORIGIN:-https://$SERVER_NAME}"
WORKERS="${WORKERS:-$(nproc)}"
PKCS11_MODULE="${PKCS11_MODULE:-}"
PKCS11_TOKEN_LABEL="${PKCS11_TOKEN_LABEL:-idservice}"
TLS_CERT="${TLS_CERT:-/etc/idservice/tls/fullchain.pem}"
TLS_KEY="${TLS_KEY:-/etc/idservice/tls/privkey.pem}"
PREFIX=/opt/idservice
DATA=/var/lib/idservice
ETC=/etc/idservice
DB=idservice
OWNER=idservice_owner
APP=idservice_app
AUDIT=idservice_audit
ADMIN=idservice_admin

log() { echo "install-debian: $*" >&2; }

# 1. Debian packages.
debs=(postgresql nginx python3 python3-venv openssl opensc curl rsync)
[ -z "$PKCS11_MODULE" ] && debs+=(softhsm2)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. System user and directories.
id idservice >/dev/null 2>&1 ||
  useradd --system --home-dir "$DATA" --shell /usr/sbin/nologin --user-group idservice
install -d -m 0750 -o root -g idservice "$ETC"
install -d -m 0700 -o idservice -g idservice "$DATA"
install -d -m 0755 "$PREFIX"

# 3. Secrets (root only), generated once.
secrets="$ETC/secrets.env"
[ -f "$secrets" ] || install -m 0600 -o root -g root /dev/null "$secrets"
chmod 0600 "$secrets"
for name in OWNER_DB_PASSWORD SERVICE_DB_PASSWORD AUDITOR_DB_PASSWORD ADMIN_DB_PASSWORD \
            HSM_USER_PIN HSM_SO_PIN; do
  grep -q "^$name=" "$secrets" || echo "$name=$(openssl rand -hex 24)" >> "$secrets"
done
# shellcheck disable=SC1090
. "$secrets"

# 4. The code: a copy of the checkout and a virtual environment with it (editable, so the
#    `migrations/` directory next to the package is the one `db migrate` applies).
log "installing the project into $PREFIX"
rsync -a --delete --exclude .venv --exclude var --exclude .git --exclude '__pycache__' \
  "$src/" "$PREFIX/src/"
# Debian's interpreter, named by path: a `python3` earlier in root's PATH (pyenv, conda) would
# leave the venv pointing into /root, which the service user cannot execute.
py=/usr/bin/python3
if [ "$(readlink -f "$PREFIX/venv/bin/python" 2>/dev/null)" != "$(readlink -f "$py")" ]; then
  rm -rf "$PREFIX/venv"
  "$py" -m venv "$PREFIX/venv"
fi
"$PREFIX/venv/bin/pip" install -q --upgrade pip
"$PREFIX/venv/bin/pip" install -q -e "$PREFIX/src"

# 5. PostgreSQL (Debian's cluster on loopback): owner, service and auditor login roles.
systemctl enable --now postgresql >/dev/null 2>&1 || pg_ctlcluster 15 main start || true
psql_su() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 "$@"; }
log "database roles and database"
# The passwords reach psql in its environment (\getenv, psql 15), never on its command line.
OWNER_DB_PASSWORD="$OWNER_DB_PASSWORD" SERVICE_DB_PASSWORD="$SERVICE_DB_PASSWORD" \
AUDITOR_DB_PASSWORD="$AUDITOR_DB_PASSWORD" ADMIN_DB_PASSWORD="$ADMIN_DB_PASSWORD" psql_su <<SQL
\\getenv owner_pw OWNER_DB_PASSWORD
\\getenv app_pw SERVICE_DB_PASSWORD
\\getenv audit_pw AUDITOR_DB_PASSWORD
\\getenv admin_pw ADMIN_DB_PASSWORD
SELECT 'CREATE ROLE $OWNER' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$OWNER') \gexec
SELECT 'CREATE ROLE $APP' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$APP') \gexec
SELECT 'CREATE ROLE $AUDIT' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$AUDIT') \gexec
SELECT 'CREATE ROLE $ADMIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ADMIN') \gexec
ALTER ROLE $OWNER WITH LOGIN CREATEROLE NOSUPERUSER NOCREATEDB NOREPLICATION PASSWORD :'owner_pw';
ALTER ROLE $APP WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'app_pw';
ALTER ROLE $AUDIT WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'audit_pw';
ALTER ROLE $ADMIN WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'admin_pw';
SELECT 'CREATE DATABASE $DB OWNER $OWNER ENCODING ''UTF8''' WHERE NOT EXISTS
  (SELECT FROM pg_database WHERE datname = '$DB') \gexec
SQL
psql_su -d "$DB" -c "REVOKE CREATE ON SCHEMA public FROM PUBLIC"

owner_url="postgresql://$OWNER:$OWNER_DB_PASSWORD@127.0.0.1:5432/$DB"
app_url="postgresql://$APP:$SERVICE_DB_PASSWORD@127.0.0.1:5432/$DB"
log "migrations (as $OWNER)"
# The owner's URL in a 0600 configuration file (IDSERVICE_CONFIG), removed right after.
migrate_config="$(mktemp)"
printf 'database_url = "%s"\nowner_database_url = "%s"\n' "$owner_url" "$owner_url" \
  > "$migrate_config"
env -i PATH=/usr/bin:/bin HOME=/root IDSERVICE_CONFIG="$migrate_config" \
  "$PREFIX/venv/bin/idservice" db migrate || { rm -f "$migrate_config"; exit 1; }
rm -f "$migrate_config"
# The group roles exist now (migration 0001): the login roles join them.
psql_su -c "GRANT idservice_service TO $APP" -c "GRANT idservice_auditor TO $AUDIT" \
        -c "GRANT idservice_administrator TO $ADMIN"
admin_env="$ETC/admin.env"
tmp="$(mktemp)"
echo "IDSERVICE_ADMIN_DATABASE_URL=postgresql://$ADMIN:$ADMIN_DB_PASSWORD@127.0.0.1:5432/$DB" \
  > "$tmp"
install -m 0600 -o root -g root "$tmp" "$admin_env"
rm -f "$tmp"

# 6. HSM: a named PKCS#11 module, or a SoftHSM token owned by the service user.
if [ -z "$PKCS11_MODULE" ]; then
  PKCS11_MODULE=/usr/lib/softhsm/libsofthsm2.so
  softhsm_conf="$ETC/softhsm2.conf"
  install -d -m 0700 -o idservice -g idservice "$DATA/softhsm" "$DATA/softhsm/tokens"
  printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
    "$DATA/softhsm/tokens" > "$softhsm_conf"
  chmod 0644 "$softhsm_conf"
  p11() { runuser -u idservice -- env SOFTHSM2_CONF="$softhsm_conf" pkcs11-tool \
            --module "$PKCS11_MODULE" "$@"; }
  if ! p11 --list-slots 2>/dev/null | grep -q "token label *: $PKCS11_TOKEN_LABEL *$"; then
    log "initialising SoftHSM token $PKCS11_TOKEN_LABEL"
    # The PINs go in the environment of pkcs11-tool only (OpenSC's `env:NAME`), never on its
    # command line; SoftHSM keeps one free slot, the one shown as uninitialized.
    free_slot="$(p11 --list-slots | awk '/^Slot /{n++} /token state: *uninitialized/{print n-1; exit}')"
    HSM_SO_PIN="$HSM_SO_PIN" p11 --slot-index "$free_slot" --init-token \
      --label "$PKCS11_TOKEN_LABEL" --so-pin env:HSM_SO_PIN >/dev/null
    HSM_SO_PIN="$HSM_SO_PIN" HSM_USER_PIN="$HSM_USER_PIN" p11 --token-label "$PKCS11_TOKEN_LABEL" \
      --init-pin --login --login-type so --so-pin env:HSM_SO_PIN --pin env:HSM_USER_PIN >/dev/null
  fi
fi

# 7. The service's environment (root-only file; systemd reads it before dropping privileges).
envfile="$ETC/idservice.env"
tmp="$(mktemp)"
{
  echo "IDSERVICE_DATABASE_URL=$app_url"
  echo "IDSERVICE_DATA_DIR=$DATA"
  echo "IDSERVICE_ORIGIN=$IDSERVICE_ORIGIN"
  echo "IDSERVICE_PKCS11_MODULE=$PKCS11_MODULE"
  echo "IDSERVICE_PKCS11_TOKEN_LABEL=$PKCS11_TOKEN_LABEL"
  echo "IDSERVICE_PKCS11_PIN=$HSM_USER_PIN"
  echo "IDSERVICE_LOG_LEVEL=INFO"
  echo "IDSERVICE_WORKERS=$WORKERS"
  [ -n "${softhsm_conf:-}" ] && echo "SOFTHSM2_CONF=$softhsm_conf"
  # SoftHSM keeps keys in files: `serve` refuses it unless told it is meant (a trial install).
  [ -n "${softhsm_conf:-}" ] && echo "IDSERVICE_ALLOW_DEV_PARTS=1"
  [ -n "${TRUST_ANCHORS:-}" ] && echo "IDSERVICE_TRUST_ANCHORS=$TRUST_ANCHORS"
  [ -n "${ISSUING_CAS:-}" ] && echo "IDSERVICE_ISSUING_CAS=$ISSUING_CAS"
  [ -n "${CRLS:-}" ] && echo "IDSERVICE_CRLS=$CRLS"
  [ -n "${CERT_POLICIES:-}" ] && echo "IDSERVICE_CERT_POLICIES=$CERT_POLICIES"
  true
} > "$tmp"
install -m 0600 -o root -g root "$tmp" "$envfile"
rm -f "$tmp"

# 8. Signing keys (access tokens, audit checkpoints) on the token: found if the key ceremony
#    made them, generated on the token otherwise (docs/operations.md, "HSM key ceremony").
log "signing keys on token $PKCS11_TOKEN_LABEL"
# The environment file reaches the service user's shell on standard input (opened here, as
# root); `export` is a shell builtin, so no value is ever a command-line argument.
runuser -u idservice -- env -i PATH=/usr/bin:/bin HOME="$DATA" /bin/bash -c '
  while IFS= read -r line; do
    case "$line" in ""|"#"*) ;; *) export "$line" ;; esac
  done
  exec "$0" -c "from idservice.runtime import ensure_service_keys
from idservice.settings import get_settings
ensure_service_keys(get_settings())"' "$PREFIX/venv/bin/python" < "$envfile"

# 9. systemd unit.
install -m 0644 "$src/deploy/systemd/idservice.service" /etc/systemd/system/idservice.service

# 10. nginx in front (TLS).
if [ ! -f "$TLS_CERT" ] || [ ! -f "$TLS_KEY" ]; then
  log "no TLS certificate at $TLS_CERT: making a self-signed one (replace it before going live)"
  install -d -m 0700 "$(dirname "$TLS_KEY")" "$(dirname "$TLS_CERT")"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=$SERVER_NAME" -addext "subjectAltName=DNS:$SERVER_NAME" \
    -keyout "$TLS_KEY" -out "$TLS_CERT" 2>/dev/null
fi
sed -e "s|server_name _;|server_name $SERVER_NAME;|" \
    -e "s|/etc/idservice/tls/fullchain.pem|$TLS_CERT|" \
    -e "s|/etc/idservice/tls/privkey.pem|$TLS_KEY|" \
    "$src/deploy/nginx/idservice.conf" > /etc/nginx/sites-available/idservice.conf
ln -sf /etc/nginx/sites-available/idservice.conf /etc/nginx/sites-enabled/idservice.conf
rm -f /etc/nginx/sites-enabled/default
nginx -t -q

# 11. Start (or restart onto the new code) and wait until ready.
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable idservice.service nginx.service >/dev/null 2>&1
  systemctl restart idservice.service
  systemctl reload-or-restart nginx.service
  for _ in $(seq 1 60); do
    if curl -fsS http://127.0.0.1:8000/readyz >/dev/null 2>&1; then
      log "ready: $IDSERVICE_ORIGIN (readyz ok)"; exit 0
    fi
    sleep 1
  done
  log "not ready after 60 s: journalctl -u idservice -n 50; curl http://127.0.0.1:8000/readyz"
  exit 1
fi
log "installed; systemd is not running here, start the units yourself"
