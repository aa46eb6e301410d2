// Package bench is the load generator behind `elevid bench login`: N
// concurrent virtual pupils (github.com/descope/virtualwebauthn) run the
// complete flow against a running ElevID — passkey login, authorize, code,
// token, userinfo — and it prints flows per second and latency
// percentiles. Prepare writes the fixture (pupils with passkeys and
// consent, a confidential platform) into the server's store; Counter
// counts the database transactions the server makes.
//
// It depends on school and idp only through their public APIs.
package bench
