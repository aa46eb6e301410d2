// Package bench is the load generator behind `elevid bench`: N
// concurrent virtual pupils (github.com/descope/virtualwebauthn) run the
// complete flow against a running ElevID — passkey login, authorize, code,
// token, userinfo (Run), across several nodes of one service when given
// several URLs — or SP-initiated SAML SSO with every Response checked
// (RunSAML: the service provider signs its requests before the timed
// window and checks the Responses after it), and it prints throughput and latency percentiles. Prepare
// writes the fixture (pupils with passkeys and consent, a confidential
// OIDC platform, a SAML service provider) into the server's store; Fill
// bulk-loads the size test's filler (pupils, release log, expired tokens)
// through sqlstore.Store.Bulk. Its browse command plays the browser for
// the .ci OIDC client test.
//
// It depends on school and idp only through their public APIs.
package bench
