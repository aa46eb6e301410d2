#!/usr/bin/env bash
# SAML interoperability: an ElevID response (signed response + signed
# assertion, RSA-SHA256) is verified by xmlsec1 and accepted by
# @node-saml/node-saml as a second, independent SP; tampered copies are
# refused by both. Run from the repository root: .ci/saml-interop.sh
# Needs: go, xmlsec1 (apt-get install xmlsec1), node + npm.
# Also checks that go.mod requires goxmldsig >= v1.6.1 (signature bypass
# in older versions; crewjam/saml alone would allow v1.4.0).
set -euo pipefail
cd "$(dirname "$0")/.."

ver=$(go list -m -f '{{.Version}}' github.com/russellhaering/goxmldsig)
if [ "$(printf '%s\n' v1.6.1 "$ver" | sort -V | head -n1)" != v1.6.1 ]; then
	echo "goxmldsig $ver < v1.6.1" >&2
	exit 1
fi
echo "goxmldsig $ver"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# The Go test makes a response through the real handlers, verifies both
# signatures with xmlsec1, and leaves the files in $out.
SAML_INTEROP_OUT="$out" go test ./idp/saml/ -run '^TestSAMLXMLSec1Verifies$' -count=1 -v | grep -E '^(--- |ok|FAIL)'
test -s "$out/response.b64"

node_dir="$out/node"
mkdir -p "$node_dir"
cp .ci/saml-node/package.json .ci/saml-node/verify.js "$node_dir/"
(cd "$node_dir" && npm install --no-audit --no-fund --silent)
node "$node_dir/verify.js" "$out"
echo "saml interop: ok"
