#!/usr/bin/env bash
# End-to-end check of deploy/install-debian.sh on a Debian 12 host WITHOUT systemd as PID 1 (a
# container or a CI machine): runs the install twice (idempotence), starts the unit's ExecStart
# by hand as user idservice and nginx directly, then checks the TLS front (readyz, security
# headers, http->https, 413 on a 3 MB body), registers a client as docs/operations.md step 5
# does, issues one PIN through nginx, and has the auditor role verify the log against the key
# published at /v1/audit/key. STAGING ONLY: it writes a client and a person record.
# Run as root from a checkout: `bash deploy/check-install.sh`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
echo "== install (1st run)"; time SERVER_NAME=localhost WORKERS=2 bash deploy/install-debian.sh
echo "== install (2nd run: idempotent)"; time SERVER_NAME=localhost WORKERS=2 bash deploy/install-debian.sh
ls -l /etc/idservice /var/lib/idservice
echo "== start the unit's command as user idservice"
runuser -u idservice -- env -i PATH=/usr/bin:/bin HOME=/var/lib/idservice \
  $(grep -v '^#' /etc/idservice/idservice.env | xargs) \
  bash -c 'cd /var/lib/idservice && exec /opt/idservice/venv/bin/idservice serve --host 127.0.0.1 --port 8000 --workers 2' \
  > /tmp/unit.log 2>&1 &
echo $! > /tmp/unit.pid
pgrep -x nginx >/dev/null && nginx -s reload || nginx
CA=/etc/idservice/tls/fullchain.pem
for i in $(seq 1 60); do curl -fsS --cacert $CA https://localhost/healthz >/dev/null 2>&1 && break; sleep 1; done
echo "== TLS front"
curl -sS -D - --cacert $CA https://localhost/readyz -o /tmp/readyz.json | grep -iE "^HTTP|strict-transport|x-content-type|x-frame|content-security"
cat /tmp/readyz.json; echo
curl -sS -o /dev/null -w "plain http -> %{http_code} %{redirect_url}\n" http://localhost/readyz
echo "== register a client (docs/operations.md step 5)"
W=$(mktemp -d); cd $W
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=civil-052 -keyout client.key -out client.pem 2>/dev/null
set -a; . /etc/idservice/idservice.env; . /etc/idservice/admin.env; set +a
/opt/idservice/venv/bin/idservice clients add --id civil-052 --cert client.pem --roles registrar --jurisdiction 052 || true
TOKEN=$(SSL_CERT_FILE=$CA /opt/idservice/venv/bin/idservice clients token --id civil-052 --key client.key)
echo "token: ${TOKEN:0:20}..."
echo "== issue a PIN through nginx"
curl -sS --cacert $CA -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"registration": {"authority": "UBND xã Nhơn Lý", "number": "INSTALL-CHECK-1", "book": "01/2024", "registered_on": "2024-03-10", "province_code": "052"}, "child": {"full_name": "Nguyễn Thị Minh Anh", "other_names": [], "sex": "F", "date_of_birth": "2024-03-02", "place_of_birth": "Quy Nhơn", "home_town": "Bình Định", "ethnicity": "Kinh", "nationality": "VN"}, "father": {"full_name": "Nguyễn Văn Hùng", "pin": "052090012345", "nationality": "VN"}, "mother": {"full_name": "Trần Thị Lan", "pin": null, "nationality": "VN"}}' \
  https://localhost/v1/pins -w "\nHTTP %{http_code}\n"
echo "== body size limit"
head -c 3000000 /dev/zero | tr '\0' 'a' > big.txt
curl -sS --cacert $CA -o /dev/null -w "3 MB body -> %{http_code}\n" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' --data-binary @big.txt https://localhost/v1/pins
echo "== auditor: verify the log with the published key, as the auditor role"
curl -sS --cacert $CA https://localhost/v1/audit/key > audit-key.pem
sleep 3
. /etc/idservice/secrets.env
verify_config="$(mktemp)"   # 0600: the password stays off every command line
printf 'database_url = "postgresql://idservice_audit:%s@127.0.0.1:5432/idservice"\n' \
  "$AUDITOR_DB_PASSWORD" > "$verify_config"
env -i PATH=/usr/bin:/bin HOME=/tmp IDSERVICE_CONFIG="$verify_config" \
  IDSERVICE_ORIGIN=https://localhost /opt/idservice/venv/bin/idservice audit verify --key audit-key.pem --workers 2
rm -f "$verify_config"
echo "== JSON logs"
tail -2 /tmp/unit.log
echo "== stop"
kill $(cat /tmp/unit.pid); nginx -s stop; sleep 2
echo done
