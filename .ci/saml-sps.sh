#!/usr/bin/env bash
# Real SAML service providers built on xmlsec1 log a pupil in through a
# running `elevid serve` (SQLite, loopback), with encrypted assertions:
#   - Apache + mod_auth_mellon (two SPs: /plain, and /mfa which requires
#     REFEDS MFA with MellonAuthnContextClassRef), default encryption;
#   - pysaml2 (.ci/saml-sps/pysaml2_sp.py), registered with
#     --data-encryption aes128-gcm.
# A pupil without consent sees ElevID's explanation, presses "back to the
# platform" and each SP shows the RequestDenied it got. xmlsec1 then
# decrypts and verifies the responses the SPs received.
# The pupil's browser is internal/samlclient (a software passkey and a
# cookie jar), driven by TestRealSPs.
# Ports 25000-25002 on 127.0.0.1. Run from anywhere: bash .ci/saml-sps.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in apache2 libapache2-mod-auth-mellon python3-pysaml2 xmlsec1 curl openssl; do
	dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

idp_port=25000 mellon_port=25001 py_port=25002
idp="http://localhost:$idp_port" mellon="http://localhost:$mellon_port" py="http://localhost:$py_port"
work=$(mktemp -d)
chmod 755 "$work"
serve_pid="" py_pid=""
cleanup() {
	rc=$?
	if [ "$rc" -ne 0 ]; then
		for f in serve.log mellon/error.log pysaml2/sp.log; do
			[ -f "$work/$f" ] && { echo "--- $f (last lines)"; tail -n 25 "$work/$f"; }
		done
	fi
	if [ -f "$work/mellon/httpd.pid" ]; then
		apache_pid=$(cat "$work/mellon/httpd.pid")
		kill "$apache_pid" 2>/dev/null || true
		for _ in $(seq 1 50); do kill -0 "$apache_pid" 2>/dev/null || break; sleep 0.1; done
	fi
	[ -n "$py_pid" ] && kill "$py_pid" 2>/dev/null || true
	[ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null || true
	wait 2>/dev/null || true
	[ -n "${SAML_SPS_KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT

wait_for() { # URL: up to 10 s
	for _ in $(seq 1 50); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done
	echo "not reachable: $1" >&2
	return 1
}

for port in $idp_port $mellon_port $py_port; do
	if curl -s -o /dev/null "http://127.0.0.1:$port/"; then echo "port $port is taken: stop what runs there first" >&2; exit 1; fi
done

# ElevID on SQLite.
go build -o "$work/elevid" ./cmd/elevid
export ELEVID_DATABASE="$work/elevid.db" ELEVID_LISTEN="127.0.0.1:$idp_port" ELEVID_ISSUER="$idp" ELEVID_LOG_LEVEL=info
"$work/elevid" migrate >/dev/null
"$work/elevid" admin create-school --code sps --name "SP-skolen" --domain sps.elevid.test 2>/dev/null
"$work/elevid" serve >"$work/serve.log" 2>&1 &
serve_pid=$!
wait_for "$idp/readyz"
curl -fsS "$idp/saml/metadata" -o "$work/idp.xml"

# Apache + mod_auth_mellon, from a private config.
user=www-data group=www-data
[ "$(id -u)" -eq 0 ] || { user=$(id -un); group=$(id -gn); }
m="$work/mellon"
mkdir -p "$m/htdocs/plain" "$m/htdocs/mfa"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$m/sp.key" -out "$m/sp.crt" -days 2 -subj /CN=mellon-sp 2>/dev/null
chgrp "$group" "$m/sp.key" && chmod 640 "$m/sp.key"
cp "$work/idp.xml" "$m/idp.xml"
sed -e "s#@DIR@#$m#g" -e "s#@PORT@#$mellon_port#g" -e "s#@USER@#$user#g" -e "s#@GROUP@#$group#g" .ci/saml-sps/mellon.conf >"$m/httpd.conf"
for d in plain mfa; do install -m 755 .ci/saml-sps/whoami.cgi "$m/htdocs/$d/whoami.cgi"; done
install -m 644 .ci/saml-sps/refused.html "$m/htdocs/refused.html"
chmod 755 "$m" "$m/htdocs"
apache2 -f "$m/httpd.conf" -k start
wait_for "$mellon/plain/mellon/metadata"

# pysaml2.
p="$work/pysaml2"
mkdir -p "$p"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$p/sp.key" -out "$p/sp.crt" -days 2 -subj /CN=pysaml2-sp 2>/dev/null
cp "$work/idp.xml" "$p/idp.xml"
/usr/bin/python3 .ci/saml-sps/pysaml2_sp.py "$py_port" "$p" >"$p/sp.log" 2>&1 &
py_pid=$!
wait_for "$py/metadata"

# Register the three SPs from their metadata and activate them for the
# school, as an operator would.
add() { # ENTITY-ID FLAGS…
	"$work/elevid" admin platform add-saml --metadata-url "$1" "${@:2}" 2>/dev/null | tee -a "$work/add-saml.out"
	"$work/elevid" admin platform activate --school sps --platform "$1" 2>/dev/null
}
given=(--attr givenName="Vises på forsiden" --attr-en givenName="Shown on the front page")
more=(--attr eduPersonPrincipalName="Brugerkonto" --attr-en eduPersonPrincipalName="User account"
	--attr eduPersonScopedAffiliation="Elev eller lærer" --attr-en eduPersonScopedAffiliation="Pupil or teacher")
add "$mellon/plain/mellon/metadata" --name "Mellon-platformen" "${given[@]}" "${more[@]}" \
	--attr schoolCode="Skolens materialer" --attr-en schoolCode="The school's materials"
add "$mellon/mfa/mellon/metadata" --name "Mellon MFA" "${given[@]}"
add "$py/metadata" --name "pysaml2-platformen" --data-encryption aes128-gcm "${given[@]}" "${more[@]}"
if grep -q PAOS "$work/add-saml.out"; then echo "add-saml printed an endpoint ElevID does not use" >&2; exit 1; fi

# The pupils' browsers.
mkdir -p "$work/out"
ELEVID_REALSP_DB="$work/elevid.db" ELEVID_REALSP_IDP="$idp" ELEVID_REALSP_SCHOOL=sps \
	ELEVID_REALSP_MELLON="$mellon" ELEVID_REALSP_PYSAML2="$py" ELEVID_REALSP_OUT="$work/out" \
	go test ./internal/samlclient/ -run '^TestRealSPs$' -count=1 -v >"$work/test.out" 2>&1 || { cat "$work/test.out"; exit 1; }
grep -vE '^\s+<' "$work/test.out" | grep -E '^(=== RUN|--- |\s+realsp|        [A-Za-z_]+=|        (mellon|pysaml2) SP)' || true
grep -q -- '--- PASS: TestRealSPs ' "$work/test.out" || { echo "TestRealSPs did not pass (skipped?)" >&2; exit 1; }
if grep -q -- '--- SKIP' "$work/test.out"; then echo "TestRealSPs skipped a part" >&2; exit 1; fi

# mod_auth_mellon asked for REFEDS MFA and checked it on the assertion,
# and logged the refusal it received.
grep -q 'adding AuthnContextClassRef https://refeds.org/profile/mfa to the AuthnRequest' "$m/error.log"
grep -q 'AuthnContextClassRef (https://refeds.org/profile/mfa) matches the MellonAuthnContextClassRef' "$m/error.log"
grep -q 'StatusCode2="urn:oasis:names:tc:SAML:2.0:status:RequestDenied"' "$m/error.log"
echo "mod_auth_mellon: REFEDS MFA requested and verified; RequestDenied received"

# xmlsec1 (as the SPs use it) decrypts and verifies what the running
# server sent.
/usr/bin/python3 - "$work/idp.xml" >"$work/idp-cert.pem" <<'EOF'
import sys, textwrap, xml.etree.ElementTree as ET
md = "{urn:oasis:names:tc:SAML:2.0:metadata}"
ds = "{http://www.w3.org/2000/09/xmldsig#}"
root = ET.parse(sys.argv[1]).getroot()
kd = next(k for k in root.iter(md + "KeyDescriptor") if k.get("use") == "signing")
b64 = "".join(kd.find(f".//{ds}X509Certificate").text.split())
print("-----BEGIN CERTIFICATE-----\n" + "\n".join(textwrap.wrap(b64, 64)) + "\n-----END CERTIFICATE-----")
EOF
verify() { # FILE XPATH
	xmlsec1 --verify --pubkey-cert-pem "$work/idp-cert.pem" \
		--id-attr:ID urn:oasis:names:tc:SAML:2.0:protocol:Response \
		--id-attr:ID urn:oasis:names:tc:SAML:2.0:assertion:Assertion \
		--node-xpath "$2" "$1" >/dev/null 2>"$work/xmlsec.err" || { cat "$work/xmlsec.err"; return 1; }
}
for r in mellon:mellon mellon-mfa:mellon pysaml2:pysaml2; do
	name=${r%%:*} key="$work/${r##*:}/sp.key" f="$work/out/${r%%:*}.xml"
	verify "$f" "/*[local-name()='Response']/*[local-name()='Signature']"
	xmlsec1 --decrypt --privkey-pem "$key" --output "$work/out/$name.dec.xml" "$f" >/dev/null 2>"$work/xmlsec.err" || { cat "$work/xmlsec.err"; exit 1; }
	verify "$work/out/$name.dec.xml" "//*[local-name()='Assertion']/*[local-name()='Signature']"
	grep -q '>Ida<' "$work/out/$name.dec.xml"
	algs=$(grep -o 'EncryptionMethod Algorithm="[^"]*"' "$f" | sed 's/.*#//; s/"//' | tr '\n' ' ')
	echo "xmlsec1: $name response signature ok, assertion decrypted ($algs) and its signature ok"
done
for name in mellon-refused pysaml2-refused; do
	verify "$work/out/$name.xml" "/*[local-name()='Response']/*[local-name()='Signature']"
	grep -q 'status:RequestDenied' "$work/out/$name.xml"
	echo "xmlsec1: $name (RequestDenied) signature ok"
done
echo "saml service providers: ok"
