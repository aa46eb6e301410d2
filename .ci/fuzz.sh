#!/usr/bin/env bash
# Short fuzzing of every parser of untrusted input (issue 15, item 10):
# SAML Redirect/POST decoding, the OIDC repeated-parameter check, WebAuthn
# JSON bodies of the passkey login, LDAP entry mapping and objectGUID
# decoding, configuration decoding, and the UTF-8 check of request bodies.
# Each target runs FUZZTIME (10s) after its seed corpus; a crash fails CI
# and leaves the failing input under the package's testdata/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-10s}"
targets=(
  "./idp FuzzParseAuthnRequest"
  "./idp FuzzParseLogoutRequest"
  "./idp FuzzRepeatedParam"
  "./idp FuzzLoginJSON"
  "./school/rostersync FuzzLDAPEntry"
  "./school/rostersync FuzzDecodeGUID"
  "./cmd/elevid FuzzConfig"
  "./web FuzzValidUTF8"
)
for t in "${targets[@]}"; do
  set -- $t
  echo "--- fuzz $2 ($1, $fuzztime)"
  go test "$1" -run '^$' -fuzz "^$2\$" -fuzztime "$fuzztime" -parallel 2
done
