#!/usr/bin/env bash
# OIDC interoperability check against a running `elevid serve`: openid-client
# v6 (Node) as a second, independent relying party. Needs a bench fixture
# made by `elevid bench prepare` (a confidential platform and pupils with
# virtual passkeys, consented) for the same database.
#
#   .ci/oidc-interop.sh http://localhost:8080 /tmp/elevid-bench.json
set -euo pipefail
cd "$(dirname "$0")/.."
issuer=${1:?issuer URL}
fixture=${2:?bench fixture}
(cd .ci/oidc-node && npm ci --no-audit --no-fund --silent)
node .ci/oidc-node/test.mjs "$issuer" "$(realpath "$fixture")"
