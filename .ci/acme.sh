#!/usr/bin/env bash
# ACME for real with the built binary: `elevid serve` obtains its
# certificate from Pebble (Let's Encrypt's test CA, Debian package pebble)
# with real validation (PEBBLE_VA_ALWAYS_VALID unset), and curl — a client
# that is not Go — checks the served chain against Pebble's root. Pebble
# resolves names with pebble-challtestsrv's mock DNS (every name is
# 127.0.0.1), so nothing in /etc changes. Ports 27050–27059.
# The same path in-process, both challenge types: go test ./cmd/elevid -run TestACMEWithPebble
set -euo pipefail
cd "$(dirname "$0")/.."
unset ELEVID_CONFIG ELEVID_DATABASE ELEVID_LISTEN ELEVID_ISSUER ELEVID_LOG_LEVEL ELEVID_SESSION_KEYS ELEVID_ENCRYPTION_KEYS ELEVID_PAIRWISE_SECRET

export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in pebble openssl curl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "acme: $*" >&2
  for f in pebble.log serve.log; do echo "--- $f"; tail -n 30 "$work/$f" || true; done >&2
  exit 1
}
waitfor() { # seconds command…
  local n=$(( $1 * 10 )); shift
  for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  "$@"
}

host=elevid.test
api=27050 mgmt=27051 http=27052 https=27053 dns=27054 dnsmgmt=27055

go build -o "$work/elevid" ./cmd/elevid

# Pebble's own API certificate (the Debian package ships none).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout "$work/api-key.pem" -out "$work/api.pem" 2>/dev/null
cat >"$work/pebble.json" <<EOF
{"pebble": {"listenAddress": "127.0.0.1:$api", "managementListenAddress": "127.0.0.1:$mgmt",
  "certificate": "$work/api.pem", "privateKey": "$work/api-key.pem",
  "httpPort": $http, "tlsPort": $https, "ocspResponderURL": "", "externalAccountBindingRequired": false}}
EOF
pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" -dns01 "127.0.0.1:$dns" -management "127.0.0.1:$dnsmgmt" \
  -http01 "" -https01 "" -tlsalpn01 "" >"$work/dns.log" 2>&1 &
pids+=($!)
PEBBLE_VA_NOSLEEP=1 pebble -config "$work/pebble.json" -dnsserver "127.0.0.1:$dns" >"$work/pebble.log" 2>&1 &
pids+=($!)
waitfor 15 curl -fsS --cacert "$work/api.pem" "https://127.0.0.1:$api/dir" || fail "Pebble did not start"

key() { openssl rand -base64 48; }
cat >"$work/elevid.yaml" <<EOF
listen: 127.0.0.1:$https
issuer: https://$host:$https
database: $work/elevid.db
log: {level: info}
secrets: {session_keys: [$(key)], encryption_keys: [$(key)], pairwise_secret: $(key)}
server:
  metrics_listen: ''
  http_redirect_listen: 127.0.0.1:$http
  tls:
    acme: {email: it@example.dk, directory_url: "https://127.0.0.1:$api/dir", cache_dir: $work/acme, hosts: [$host], ca_file: $work/api.pem}
EOF
"$work/elevid" serve --config "$work/elevid.yaml" >"$work/serve.log" 2>&1 &
serve_pid=$!
pids+=($serve_pid)
waitfor 15 curl -sS -o /dev/null "http://127.0.0.1:$http/" || fail "elevid serve did not start"

# The redirect listener sends http to the issuer.
loc=$(curl -sS -o /dev/null -w '%{redirect_url}' "http://127.0.0.1:$http/console?x=1")
[ "$loc" = "https://$host:$https/console?x=1" ] || fail "redirect to '$loc'"

# curl trusts only Pebble's root (made at Pebble's start).
curl -fsS --cacert "$work/api.pem" "https://127.0.0.1:$mgmt/roots/0" >"$work/root.pem"
curl -fsS --cacert "$work/api.pem" "https://127.0.0.1:$mgmt/intermediates/0" >"$work/intermediate.pem"
# serve obtains the certificate at start.
waitfor 60 grep -q "TLS certificate ready" "$work/serve.log" || fail "no certificate from Pebble"
grep "TLS certificate ready" "$work/serve.log"
body=$(curl -fsS --max-time 60 --cacert "$work/root.pem" --resolve "$host:$https:127.0.0.1" "https://$host:$https/healthz") ||
  fail "https with Pebble's root failed"
[ "$body" = "ok" ] || fail "healthz said '$body'"
served=$(openssl s_client -connect "127.0.0.1:$https" -servername "$host" </dev/null 2>/dev/null | openssl x509 -noout -issuer -ext subjectAltName)
echo "$served"
want_issuer=$(openssl x509 -in "$work/intermediate.pem" -noout -subject | sed 's/^subject=//')
grep -qF "issuer=$want_issuer" <<<"$served" || fail "served certificate not issued by Pebble's intermediate ($want_issuer)"
grep -qF "DNS:$host" <<<"$served" || fail "served certificate does not name $host"
grep -q "Attempting to validate\|Pulled a task" "$work/pebble.log" || fail "Pebble validated nothing"

kill "$serve_pid"
wait "$serve_pid" || fail "elevid serve did not shut down cleanly"
echo "ACME against Pebble: ok"
