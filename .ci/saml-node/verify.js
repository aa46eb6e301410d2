// Usage: node verify.js DIR
// DIR holds response.b64 (the SAMLResponse form value), idp-cert.pem and
// sp.env (SP_ENTITY_ID, ACS_URL, IDP_ENTITY_ID), as written by the Go test
// TestSAMLXMLSec1Verifies with SAML_INTEROP_OUT=DIR. Exits non-zero unless
// node-saml accepts the response (both signatures required) and also
// rejects a tampered copy.
"use strict";
const fs = require("fs");
const path = require("path");
const { SAML } = require("@node-saml/node-saml");

async function main() {
  const dir = process.argv[2];
  const env = Object.fromEntries(
    fs.readFileSync(path.join(dir, "sp.env"), "utf8").trim().split("\n").map((l) => l.split(/=(.*)/s).slice(0, 2)),
  );
  const response = fs.readFileSync(path.join(dir, "response.b64"), "utf8").trim();
  const saml = new SAML({
    callbackUrl: env.ACS_URL,
    issuer: env.SP_ENTITY_ID,
    audience: env.SP_ENTITY_ID,
    idpIssuer: env.IDP_ENTITY_ID,
    idpCert: fs.readFileSync(path.join(dir, "idp-cert.pem"), "utf8"),
    wantAssertionsSigned: true,
    wantAuthnResponseSigned: true,
    validateInResponseTo: "never",
    acceptedClockSkewMs: 60000,
  });
  const { profile } = await saml.validatePostResponseAsync({ SAMLResponse: response });
  if (!profile || !profile.nameID) throw new Error("no profile/nameID");
  console.log("node-saml accepted the response: nameID", profile.nameID, "format", profile.nameIDFormat);
  const tampered = Buffer.from(
    Buffer.from(response, "base64").toString("utf8").replace(">Ida<", ">Eva<"),
  ).toString("base64");
  let rejected = false;
  try {
    await saml.validatePostResponseAsync({ SAMLResponse: tampered });
  } catch (e) {
    rejected = true;
    console.log("node-saml rejected the tampered response:", e.message);
  }
  if (!rejected) throw new Error("node-saml accepted a tampered response");
}

main().catch((e) => {
  console.error("FAIL:", e && e.message ? e.message : e);
  process.exit(1);
});
