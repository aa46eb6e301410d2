// A second, non-Go relying party for ElevID: openid-client v6 does
// discovery, builds a code+PKCE authorization request, validates the
// callback and the ID token (signature, iss, aud, nonce, exp) and calls
// userinfo. The one step a headless client cannot do — the pupil's passkey
// login in a browser — is played by `go run ./internal/bench/browse`, which
// follows the authorization URL with a virtual authenticator from the
// bench fixture and prints the callback URL it was sent to.
//
//   node test.mjs ISSUER FIXTURE.json
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as client from 'openid-client';

const [issuer, fixturePath] = process.argv.slice(2);
if (!issuer || !fixturePath) {
  console.error('usage: node test.mjs ISSUER FIXTURE.json');
  process.exit(2);
}
const fixture = JSON.parse(readFileSync(fixturePath, 'utf8'));
const insecure = issuer.startsWith('http://') ? { execute: [client.allowInsecureRequests] } : {};

const config = await client.discovery(new URL(issuer), fixture.client_id,
  { client_secret: fixture.client_secret, id_token_signed_response_alg: 'ES256' },
  client.ClientSecretBasic(fixture.client_secret), insecure);
const meta = config.serverMetadata();
if (meta.issuer !== issuer.replace(/\/$/, '')) throw new Error(`issuer ${meta.issuer}`);
if (!meta.code_challenge_methods_supported?.includes('S256')) throw new Error('no S256 PKCE in discovery');

const verifier = client.randomPKCECodeVerifier();
const state = client.randomState();
const nonce = client.randomNonce();
const authURL = client.buildAuthorizationUrl(config, {
  redirect_uri: fixture.redirect_uri,
  scope: 'openid profile groups',
  code_challenge: await client.calculatePKCECodeChallenge(verifier),
  code_challenge_method: 'S256',
  state,
  nonce,
});

const repo = new URL('../..', import.meta.url).pathname;
const callback = execFileSync('go', ['run', './internal/bench/browse', '-fixture', fixturePath, '-base', issuer, authURL.href],
  { cwd: repo, encoding: 'utf8' }).trim();

const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
  pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
});
const claims = tokens.claims();
if (!claims?.sub || claims.acr !== 'https://refeds.org/profile/mfa') throw new Error(`ID token claims ${JSON.stringify(claims)}`);
const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
if (!info.given_name || !Array.isArray(info.groups)) throw new Error(`userinfo ${JSON.stringify(info)}`);

// A second redemption of the same code must fail.
let reused = false;
try {
  await client.authorizationCodeGrant(config, new URL(callback), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
} catch (e) {
  reused = e?.error === 'invalid_grant' || String(e).includes('invalid_grant');
}
if (!reused) throw new Error('a reused code was not refused with invalid_grant');

console.log(`openid-client ok: sub ${claims.sub.slice(0, 8)}…, acr ${claims.acr}, userinfo ${Object.keys(info).sort().join(',')}`);
