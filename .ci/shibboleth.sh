#!/usr/bin/env bash
# A real Shibboleth SP 3 (Apache 2.4 + mod_shib + shibd, Debian packages)
# on loopback, against a running `elevid serve` (SQLite): a pupil signs in
# with a passkey (software authenticator in a Go test), the SP shows the
# released attributes, the guardian withdraws on the guardian page, and
# ElevID's SOAP back-channel logout ends the SP's session (its protected
# page asks for a new login). Everything runs from a private directory;
# nothing under /etc is changed. Ports: ElevID 22001, Apache 22002, shibd
# 22003. Run from the repository root (as root in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in apache2 shibboleth-sp-utils libapache2-mod-shib openssl curl; do
	dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

idp_port=22001 sp_port=22002 shibd_port=22003
idp="http://localhost:$idp_port" sp="http://localhost:$sp_port"
entity="$sp/shibboleth"
work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() {
	[ -f "$work/httpd.pid" ] && kill "$(cat "$work/httpd.pid")" 2>/dev/null || true
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ "${keep:-}" != "" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() {
	echo "shibboleth: $*" >&2
	for f in serve.log shibd.log httpd-error.log; do [ -f "$work/$f" ] && { echo "--- $f"; tail -n 60 "$work/$f"; }; done
	exit 1
}

# ElevID.
go build -o "$work/elevid" ./cmd/elevid
export ELEVID_DATABASE="$work/idp.db" ELEVID_LISTEN="127.0.0.1:$idp_port" ELEVID_ISSUER="$idp" ELEVID_LOG_LEVEL=info
"$work/elevid" migrate >/dev/null
"$work/elevid" serve >"$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do curl -fs "$idp/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fs "$idp/readyz" >/dev/null || fail "elevid serve did not start"
# The pupil's school first: the IdP metadata publishes its domain as a
# shibmd:Scope, without which the SP drops the scoped affiliation.
"$work/elevid" admin create-school --code shib --name Shibskolen --domain shib.elevid.test >/dev/null
curl -fs "$idp/saml/metadata" -o "$work/idp-metadata.xml" || fail "no IdP metadata"
grep -q 'shib.elevid.test' "$work/idp-metadata.xml" || fail "the IdP metadata has no scope for the school"

# The SP: key, private shibd configuration, Apache on loopback.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/sp-key.pem" -out "$work/sp-cert.pem" -days 2 -subj "/CN=localhost" 2>/dev/null
mkdir -p "$work/www/secure" "$work/run"
echo '<!doctype html><title>SP</title><p id="shibboleth-protected">protected</p>' >"$work/www/secure/index.html"
cat >"$work/shibd.logger" <<LOG
log4j.rootCategory=INFO, shibd_log
log4j.category.Shibboleth.Logout=DEBUG
log4j.category.Shibboleth.SessionCache=DEBUG
log4j.appender.shibd_log=org.apache.log4j.FileAppender
log4j.appender.shibd_log.fileName=$work/shibd.log
log4j.appender.shibd_log.layout=org.apache.log4j.PatternLayout
log4j.appender.shibd_log.layout.ConversionPattern=%d{%Y-%m-%d %H:%M:%S} %p %c %x: %m%n
LOG
cat >"$work/native.logger" <<LOG
log4j.rootCategory=WARN, native_log
log4j.appender.native_log=org.apache.log4j.FileAppender
log4j.appender.native_log.fileName=$work/native.log
log4j.appender.native_log.layout=org.apache.log4j.PatternLayout
log4j.appender.native_log.layout.ConversionPattern=%d{%Y-%m-%d %H:%M:%S} %p %c %x: %m%n
LOG
touch "$work/native.log"; chmod 666 "$work/native.log"
cat >"$work/shibboleth2.xml" <<XML
<SPConfig xmlns="urn:mace:shibboleth:3.0:native:sp:config" xmlns:conf="urn:mace:shibboleth:3.0:native:sp:config" clockSkew="180">
  <OutOfProcess logger="$work/shibd.logger"/>
  <InProcess logger="$work/native.logger"/>
  <TCPListener address="127.0.0.1" port="$shibd_port" acl="127.0.0.1"/>
  <ApplicationDefaults entityID="$entity" REMOTE_USER="eppn subject-id pairwise-id persistent-id">
    <Sessions lifetime="28800" timeout="3600" relayState="ss:mem" checkAddress="false"
              handlerSSL="false" cookieProps="http" redirectLimit="exact">
      <SSO entityID="$idp/saml/metadata">SAML2</SSO>
      <Logout>SAML2 Local</Logout>
      <Handler type="MetadataGenerator" Location="/Metadata" signing="false"/>
      <Handler type="Status" Location="/Status" acl="127.0.0.1 ::1"/>
      <Handler type="Session" Location="/Session" showAttributeValues="true"/>
    </Sessions>
    <Errors supportContact="root@localhost" helpLocation="/about.html" styleSheet="/shibboleth-sp/main.css"/>
    <MetadataProvider type="XML" validate="true" path="$work/idp-metadata.xml"/>
    <AttributeExtractor type="XML" validate="true" reloadChanges="false" path="$work/attribute-map.xml"/>
    <AttributeFilter type="XML" validate="true" path="/etc/shibboleth/attribute-policy.xml"/>
    <CredentialResolver type="File" use="signing" key="$work/sp-key.pem" certificate="$work/sp-cert.pem"/>
    <CredentialResolver type="File" use="encryption" key="$work/sp-key.pem" certificate="$work/sp-cert.pem"/>
  </ApplicationDefaults>
  <SecurityPolicyProvider type="XML" validate="true" path="/etc/shibboleth/security-policy.xml"/>
  <ProtocolProvider type="XML" validate="true" reloadChanges="false" path="/etc/shibboleth/protocols.xml"/>
</SPConfig>
XML
# The stock attribute map leaves givenName and schacHomeOrganization out.
cat >"$work/attribute-map.xml" <<'XML'
<Attributes xmlns="urn:mace:shibboleth:2.0:attribute-map" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <Attribute name="urn:oid:1.3.6.1.4.1.5923.1.1.1.9" id="affiliation">
    <AttributeDecoder xsi:type="ScopedAttributeDecoder" caseSensitive="false"/>
  </Attribute>
  <Attribute name="urn:oid:2.5.4.42" id="givenName"/>
  <Attribute name="urn:oid:1.3.6.1.4.1.25178.1.2.9" id="schacHomeOrganization">
    <AttributeDecoder xsi:type="StringAttributeDecoder" caseSensitive="false"/>
  </Attribute>
  <Attribute name="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" id="persistent-id">
    <AttributeDecoder xsi:type="NameIDAttributeDecoder" formatter="$NameQualifier!$SPNameQualifier!$Name" defaultQualifiers="true"/>
  </Attribute>
</Attributes>
XML
chmod 644 "$work"/*.xml "$work"/*.logger "$work/sp-cert.pem"
chmod 640 "$work/sp-key.pem"
/usr/sbin/shibd -F -f -c "$work/shibboleth2.xml" -p "$work/run/shibd.pid" >"$work/shibd.out" 2>&1 &
pids+=($!)
user_directive=""
[ "$(id -u)" = 0 ] && user_directive="User www-data
Group www-data"
cat >"$work/httpd.conf" <<CONF
ServerRoot /etc/apache2
ServerName localhost:$sp_port
Listen 127.0.0.1:$sp_port
PidFile $work/httpd.pid
Mutex file:$work/run
DefaultRuntimeDir $work/run
ErrorLog $work/httpd-error.log
LogLevel warn
$user_directive
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule authn_core_module /usr/lib/apache2/modules/mod_authn_core.so
LoadModule dir_module /usr/lib/apache2/modules/mod_dir.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
LoadModule mod_shib /usr/lib/apache2/modules/mod_shib.so
TypesConfig /etc/mime.types
ShibConfig $work/shibboleth2.xml
UseCanonicalName On
DocumentRoot $work/www
DirectoryIndex index.html
<Directory $work/www>
  Require all granted
</Directory>
<Location /Shibboleth.sso>
  SetHandler shib
</Location>
<Location /secure>
  AuthType shibboleth
  ShibRequestSetting requireSession 1
  Require shib-session
</Location>
CONF
chmod 644 "$work/httpd.conf"
chmod 777 "$work/run"
apache2 -f "$work/httpd.conf" -k start 2>>"$work/httpd-error.log" || fail "apache did not start"
# mod_shib reaches shibd per request: wait until both answer.
for _ in $(seq 1 100); do curl -fs "$sp/Shibboleth.sso/Status" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fs "$sp/Shibboleth.sso/Metadata" -o "$work/sp-metadata.xml" || fail "no SP metadata (Apache/shibd not up)"
grep -q 'urn:oasis:names:tc:SAML:2.0:bindings:SOAP" Location="'"$sp"'/Shibboleth.sso/SLO/SOAP"' "$work/sp-metadata.xml" ||
	fail "the SP's metadata has no SOAP single logout service"

# Register the SP at ElevID (as an operator would), with its metadata.
"$work/elevid" admin platform add-saml --name "Shibboleth SP" --metadata "$work/sp-metadata.xml" \
	--attr givenName="Læreren ser elevens fornavn" --attr-en givenName="The teacher sees the pupil's first name" \
	--attr eduPersonScopedAffiliation="Platformen ved, at brugeren er elev" --attr-en eduPersonScopedAffiliation="The platform knows the user is a pupil" \
	--attr schacHomeOrganization="Platformen ved, hvilken skole eleven går på" --attr-en schacHomeOrganization="The platform knows the pupil's school" \
	>/dev/null || fail "registering the SP failed"

# The walk: sign-in, attributes, withdrawal, SOAP logout, new login asked.
ELEVID_SHIB_SP="$sp" ELEVID_SHIB_ENTITY="$entity" ELEVID_SHIB_IDP="$idp" ELEVID_SHIB_DB="$work/idp.db" \
	go test ./cmd/elevid -run '^TestShibbolethSOAPLogout$' -count=1 -v >"$work/test.log" 2>&1 || { cat "$work/test.log"; fail "the walk failed"; }
grep -E '^(--- |ok|FAIL)|SOAP logout delivered' "$work/test.log"
grep -q -- '--- PASS: TestShibbolethSOAPLogout' "$work/test.log" || fail "the walk did not run"
grep -q 'queued logout delivered.*protocol=saml' "$work/serve.log" || fail "ElevID did not record the SOAP delivery"
# shibd ended the session because of ElevID's LogoutRequest (not a timeout).
grep -q 'request to logout sessions from ('"$idp"'/saml/metadata)' "$work/shibd.log" || fail "shibd logged no logout request from ElevID"
grep -q 'session cache returned 1 sessions bound to NameID in logout request' "$work/shibd.log" || fail "shibd found no session for the NameID"
grep -E 'request to logout sessions|sessions bound to NameID' "$work/shibd.log"
echo "shibboleth: ok"
