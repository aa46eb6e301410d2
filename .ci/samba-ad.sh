#!/usr/bin/env bash
# Active Directory for real: provisions a Samba AD DC in a temporary
# directory (samba-tool domain provision --targetdir: nothing in /etc
# changes), with LDAP on 127.0.0.1 only and a TLS certificate from a CA
# this script makes (Samba's self-made one has no subjectAltName, which Go
# refuses), then runs TestSambaAD (school/rostersync): the ad preset's
# create, update, quarantine of a deleted user, restore from Deleted
# Objects, LDAPS and StartTLS, the schema check of the date-of-birth
# attribute and the field-change threshold. Fails when the test fails or
# skips. Samba's LDAP server has fixed ports: 389, 636, 3268 and 3269 on
# 127.0.0.1 must be free. Run from the repository root as root.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in samba samba-ad-dc samba-ad-provision ldap-utils openssl; do
	dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

for port in 389 636 3268 3269; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "samba-ad: port $port on 127.0.0.1 is in use; Samba's LDAP ports cannot be moved" >&2
		exit 1
	fi
done

dir=$(mktemp -d)
pid=""
cleanup() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT

realm=ELEVID.TEST
base="DC=elevid,DC=test"
password="Elev1d-$(openssl rand -hex 8)!"
start=$(date +%s)
samba-tool domain provision --targetdir="$dir/dc" --realm="$realm" --domain=ELEVID --server-role=dc \
	--dns-backend=NONE --host-name=dc1 --adminpass="$password" \
	--option="interfaces=127.0.0.1" --option="bind interfaces only=yes" >"$dir/provision.log" 2>&1 ||
	{ cat "$dir/provision.log"; exit 1; }
echo "samba-ad: provisioned in $(( $(date +%s) - start ))s"

tls="$dir/dc/tls"
mkdir -p "$tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tls/ca.key" -out "$tls/ca.pem" \
	-days 2 -subj "/CN=ElevID CI Samba CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tls/server.key" -out "$tls/server.csr" \
	-subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,DNS:dc1.elevid.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$tls/ext.cnf"
openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
	-out "$tls/server.pem" -days 2 -extfile "$tls/ext.cnf" 2>/dev/null
chmod 600 "$tls/server.key"

# Only the LDAP server; logs, pid and sockets inside the target dir.
conf="$dir/dc/etc/smb.conf"
sed -i -e 's|^\tserver services = .*|\tserver services = ldap|' -e "s|^\tlog file = .*|\tlog file = $dir/dc/log.%m|" "$conf"
sed -i "/^\[global\]/a\\
\ttls enabled = yes\\
\ttls keyfile = $tls/server.key\\
\ttls certfile = $tls/server.pem\\
\ttls cafile = $tls/ca.pem\\
\tpid directory = $dir/dc\\
\tncalrpc dir = $dir/dc/ncalrpc\\
\twinbindd socket directory = $dir/dc/winbindd" "$conf"

samba -s "$conf" -i --debug-stdout -d1 >"$dir/samba.log" 2>&1 &
pid=$!
ready=""
for _ in $(seq 1 120); do
	if LDAPTLS_CACERT="$tls/ca.pem" ldapsearch -LLL -H ldaps://127.0.0.1 -x -D "CN=Administrator,CN=Users,$base" -w "$password" \
		-b "$base" -s base dn >/dev/null 2>&1; then
		ready=1
		break
	fi
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.5
done
if [ -z "$ready" ]; then
	echo "samba-ad: the DC did not answer over LDAPS" >&2
	cat "$dir/samba.log" >&2
	exit 1
fi
echo "samba-ad: DC up after $(( $(date +%s) - start ))s"

ELEVID_TEST_SAMBA_URL=ldaps://127.0.0.1:636 ELEVID_TEST_SAMBA_CA="$tls/ca.pem" \
	ELEVID_TEST_SAMBA_BIND="CN=Administrator,CN=Users,$base" ELEVID_TEST_SAMBA_PASSWORD="$password" ELEVID_TEST_SAMBA_BASE="$base" \
	go test ./school/rostersync/ -run '^TestSambaAD$' -count=1 -v 2>&1 | grep -E '^(=== RUN|--- |\s+samba_test|ok|FAIL|PASS)' | tee "$dir/test.log"
grep -q -- '--- PASS: TestSambaAD' "$dir/test.log"
echo "samba-ad: passed in $(( $(date +%s) - start ))s"
