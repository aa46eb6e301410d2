package saml

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/elevid/elevid/idp/login"
	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/school"
)

const (
	attrURI         = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
	entityFormat    = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
	bearerMethod    = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
	authnContextRef = login.ACUnspecified
)

// samlAttrDef names one releasable attribute.
type samlAttrDef struct{ Grant, OID, Friendly string }

var samlAttrDefs = map[string]samlAttrDef{
	"eduPersonPrincipalName":     {"eduPersonPrincipalName", "urn:oid:1.3.6.1.4.1.5923.1.1.1.6", "eduPersonPrincipalName"},
	"eduPersonScopedAffiliation": {"eduPersonScopedAffiliation", "urn:oid:1.3.6.1.4.1.5923.1.1.1.9", "eduPersonScopedAffiliation"},
	"eduPersonTargetedID":        {"eduPersonTargetedID", "urn:oid:1.3.6.1.4.1.5923.1.1.1.10", "eduPersonTargetedID"},
	"pairwise-id":                {"pairwise-id", "urn:oasis:names:tc:SAML:attribute:pairwise-id", "pairwise-id"},
	"displayName":                {"displayName", "urn:oid:2.16.840.1.113730.3.1.241", "displayName"},
	"givenName":                  {"givenName", "urn:oid:2.5.4.42", "givenName"},
	"sn":                         {"sn", "urn:oid:2.5.4.4", "sn"},
	"schacHomeOrganization":      {"schacHomeOrganization", "urn:oid:1.3.6.1.4.1.25178.1.2.9", "schacHomeOrganization"},
	// No registered OID exists for these two; ElevID names them by URN.
	"schoolCode": {"schoolCode", "urn:elevid:attribute:schoolCode", "schoolCode"},
	"groups":     {"groups", "urn:oid:1.3.6.1.4.1.5923.1.5.1.1", "isMemberOf"},
}

// Attributes returns the SAML attributes of a release at platform pf, in
// AttributeNames order, and their canonical names for the release log
// (idpEntityID qualifies the targeted-id NameID). Every value comes from release.Compute, so an OIDC platform with
// the same grants gets the same values (a multi-valued attribute as
// several AttributeValues here, a JSON array there).
func Attributes(idpEntityID string, pf school.Platform, rel release.Release) ([]saml.Attribute, []string) {
	var out []saml.Attribute
	var names []string
	for _, name := range AttributeNames {
		canon := release.Canonical(name)
		values, ok := rel.Values[canon]
		if !ok {
			continue
		}
		def := samlAttrDefs[name]
		a := saml.Attribute{FriendlyName: def.Friendly, Name: def.OID, NameFormat: attrURI}
		if canon == release.TargetedID {
			a.Values = []saml.AttributeValue{{NameID: &saml.NameID{
				Format: string(saml.PersistentNameIDFormat), NameQualifier: idpEntityID,
				SPNameQualifier: pf.ClientID, Value: values[0],
			}}}
		} else {
			for _, v := range values {
				a.Values = append(a.Values, saml.AttributeValue{Type: "xs:string", Value: v})
			}
		}
		out = append(out, a)
		names = append(names, canon)
	}
	return out, names
}

// responseInput is what one Response says.
type responseInput struct {
	Now          time.Time
	SP           samlSP
	ACS          string
	InResponseTo string // empty for IdP-initiated
	NameID       saml.NameID
	SessionIndex string
	AuthTime     time.Time
	AuthnContext string // AuthnContextClassRef; unspecified when empty
	Attributes   []saml.Attribute
}

// signers caches a signing context per certificate.
var signers sync.Map // *x509.Certificate → *dsig.SigningContext

func signingContext(pair KeyPair) (*dsig.SigningContext, error) {
	if v, ok := signers.Load(pair.Cert); ok {
		return v.(*dsig.SigningContext), nil
	}
	sc := dsig.NewDefaultSigningContext(dsig.TLSCertKeyStore(tls.Certificate{
		Certificate: [][]byte{pair.Cert.Raw}, PrivateKey: pair.Key, Leaf: pair.Cert,
	}))
	sc.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := sc.SetSignatureMethod(dsig.RSASHA256SignatureMethod); err != nil {
		return nil, err
	}
	signers.Store(pair.Cert, sc)
	return sc, nil
}

// buildResponse makes the Response XML: the assertion signed when the
// platform wants it, encrypted when it has an encryption certificate and
// encryption is on, and the Response signed when the platform wants it.
func (s *IdP) buildResponse(pair KeyPair, in responseInput) ([]byte, error) {
	sc, err := signingContext(pair)
	if err != nil {
		return nil, err
	}
	now := in.Now.UTC()
	notOnOrAfter := now.Add(s.opt.AssertionTTL)
	assertion := &saml.Assertion{
		ID: randomID(), IssueInstant: now, Version: "2.0",
		Issuer: saml.Issuer{Format: entityFormat, Value: s.entityID},
		Subject: &saml.Subject{
			NameID: &in.NameID,
			SubjectConfirmations: []saml.SubjectConfirmation{{
				Method: bearerMethod,
				SubjectConfirmationData: &saml.SubjectConfirmationData{
					InResponseTo: in.InResponseTo, NotOnOrAfter: notOnOrAfter, Recipient: in.ACS,
				},
			}},
		},
		Conditions: &saml.Conditions{
			NotBefore: now.Add(-time.Minute), NotOnOrAfter: notOnOrAfter,
			AudienceRestrictions: []saml.AudienceRestriction{{Audience: saml.Audience{Value: in.SP.Platform.ClientID}}},
		},
		AuthnStatements: []saml.AuthnStatement{{
			AuthnInstant: in.AuthTime.UTC(), SessionIndex: in.SessionIndex,
			AuthnContext: saml.AuthnContext{AuthnContextClassRef: &saml.AuthnContextClassRef{Value: authnContextRef}},
		}},
	}
	if in.AuthnContext != "" {
		assertion.AuthnStatements[0].AuthnContext.AuthnContextClassRef.Value = in.AuthnContext
	}
	if len(in.Attributes) > 0 {
		assertion.AttributeStatements = []saml.AttributeStatement{{Attributes: in.Attributes}}
	}
	assertionEl := assertion.Element()
	if in.SP.Settings.SignAssertion {
		signed, err := sc.SignEnveloped(assertionEl)
		if err != nil {
			return nil, fmt.Errorf("sign assertion: %w", err)
		}
		assertion.Signature = signed.ChildElements()[len(signed.ChildElements())-1]
		assertionEl = assertion.Element()
	}
	if in.SP.Settings.Encrypt && in.SP.Settings.EncryptionCert != "" {
		if assertionEl, err = encryptAssertion(assertionEl, in.SP); err != nil {
			return nil, err
		}
	}
	resp := &saml.Response{
		Destination: in.ACS, ID: randomID(), InResponseTo: in.InResponseTo, IssueInstant: now, Version: "2.0",
		Issuer: &saml.Issuer{Format: entityFormat, Value: s.entityID},
		Status: saml.Status{StatusCode: saml.StatusCode{Value: saml.StatusSuccess}},
	}
	respEl := resp.Element()
	respEl.AddChild(assertionEl)
	if in.SP.Settings.SignResponse {
		signed, err := sc.SignEnveloped(respEl)
		if err != nil {
			return nil, fmt.Errorf("sign response: %w", err)
		}
		resp.Signature = signed.ChildElements()[len(signed.ChildElements())-1]
		respEl = resp.Element()
		respEl.AddChild(assertionEl)
	}
	doc := etree.NewDocument()
	doc.SetRoot(respEl)
	return doc.WriteToBytes()
}

// buildStatusResponse makes a signed Response with a non-success status
// and no assertion.
func (s *IdP) buildStatusResponse(pair KeyPair, now time.Time, acs, inResponseTo, code, sub string) ([]byte, error) {
	sc, err := signingContext(pair)
	if err != nil {
		return nil, err
	}
	resp := &saml.Response{
		Destination: acs, ID: randomID(), InResponseTo: inResponseTo, IssueInstant: now.UTC(), Version: "2.0",
		Issuer: &saml.Issuer{Format: entityFormat, Value: s.entityID},
		Status: saml.Status{StatusCode: saml.StatusCode{Value: code}},
	}
	if sub != "" {
		resp.Status.StatusCode.StatusCode = &saml.StatusCode{Value: sub}
	}
	signed, err := sc.SignEnveloped(resp.Element())
	if err != nil {
		return nil, err
	}
	// The schema puts Signature right after Issuer (Lasso, behind
	// mod_auth_mellon, refuses it anywhere else): SignEnveloped appends it.
	resp.Signature = signed.ChildElements()[len(signed.ChildElements())-1]
	doc := etree.NewDocument()
	doc.SetRoot(resp.Element())
	return doc.WriteToBytes()
}

var errNoSLO = errors.New("no single logout endpoint")
