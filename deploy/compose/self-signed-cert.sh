#!/usr/bin/env bash
# A self-signed certificate for trying the compose setup (deploy/compose/tls/); never for production.
set -euo pipefail
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/tls"
name="${1:-localhost}"
mkdir -p "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=$name" -addext "subjectAltName=DNS:$name" \
  -keyout "$dir/privkey.pem" -out "$dir/fullchain.pem" 2>/dev/null
chmod 0600 "$dir/privkey.pem"
echo "wrote $dir/fullchain.pem and $dir/privkey.pem"
