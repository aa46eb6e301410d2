package saml

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/access"
)

// soapSLOEndpoint returns the SP's single logout service with the SOAP
// binding (back-channel single logout).
func soapSLOEndpoint(sp samlSP) (saml.Endpoint, error) {
	for _, d := range sp.Metadata.SPSSODescriptors {
		for _, e := range d.SingleLogoutServices {
			if e.Binding == saml.SOAPBinding && (strings.HasPrefix(e.Location, "https://") || strings.HasPrefix(e.Location, "http://")) {
				return e, nil
			}
		}
	}
	return saml.Endpoint{}, errNoSLO
}

// errSOAPRefused means the SP cannot take a back-channel logout (no SOAP
// single logout service, or gone): sending it again will not help.
var errSOAPRefused = access.Undeliverable("the service provider cannot take a SOAP logout")

// RunLogoutQueue delivers the SAML logout notices of the durable queue
// (queued by package access in the transaction that ended the access)
// until ctx ends, as signed LogoutRequests over the SOAP binding, through
// the queue loop every protocol shares (access.Delivery): at once when
// this node queued some, and every 15 s for those of other nodes and
// retries (30 s, then doubling up to an hour apart, for a day). Every node
// runs it; leases keep two nodes from sending one notice.
func (s *IdP) RunLogoutQueue(ctx context.Context, owner string) {
	s.logoutDelivery().Run(ctx, owner)
}

// DeliverQueuedLogouts claims the due SAML logout notices for owner and
// tries each once; it returns how many were delivered and how many
// failed.
func (s *IdP) DeliverQueuedLogouts(ctx context.Context, owner string) (delivered, failed int, err error) {
	return s.logoutDelivery().Deliver(ctx, owner)
}

func (s *IdP) logoutDelivery() *access.Delivery {
	return &access.Delivery{Protocol: school.ProtocolSAML, Queue: s.opt.Store, Send: s.sendQueuedLogout,
		Wake: s.wake, Now: s.now, Logger: s.log.With("component", "saml")}
}

// sendQueuedLogout sends notice n to its SP's SOAP single logout service.
func (s *IdP) sendQueuedLogout(ctx context.Context, n school.LogoutNotice) (string, error) {
	sp, err := s.spByID(ctx, n.PlatformID)
	if err != nil {
		return n.PlatformID, fmt.Errorf("%w: %v", errSOAPRefused, err)
	}
	ep, err := soapSLOEndpoint(sp)
	if err != nil {
		return sp.Platform.ClientID, fmt.Errorf("%w: its metadata has no SOAP single logout service", errSOAPRefused)
	}
	return sp.Platform.ClientID, s.postSOAPLogout(ctx, sp, ep, n)
}

// soapEnvelope is the SOAP 1.1 envelope of a LogoutResponse.
type soapEnvelope struct {
	XMLName xml.Name `xml:"http://schemas.xmlsoap.org/soap/envelope/ Envelope"`
	Body    struct {
		LogoutResponse *saml.LogoutResponse `xml:"urn:oasis:names:tc:SAML:2.0:protocol LogoutResponse"`
		Fault          *struct {
			Code   string `xml:"faultcode"`
			String string `xml:"faultstring"`
		} `xml:"http://schemas.xmlsoap.org/soap/envelope/ Fault"`
	} `xml:"http://schemas.xmlsoap.org/soap/envelope/ Body"`
}

// soapLogoutRequest returns the SOAP envelope of a signed LogoutRequest
// for notice n, naming the NameID and SessionIndex issued to sp.
func (s *IdP) soapLogoutRequest(ctx context.Context, sp samlSP, ep saml.Endpoint, n school.LogoutNotice) ([]byte, string, error) {
	lr := s.logoutRequest(sp, ep.Location, n.NameIDFormat, n.Subject, n.SessionIndex)
	pair, err := s.opt.Keys.Signing(ctx)
	if err != nil {
		return nil, "", err
	}
	sc, err := signingContext(pair)
	if err != nil {
		return nil, "", err
	}
	signed, err := sc.SignEnveloped(lr.Element())
	if err != nil {
		return nil, "", err
	}
	doc := etree.NewDocument()
	env := doc.CreateElement("S:Envelope")
	env.CreateAttr("xmlns:S", "http://schemas.xmlsoap.org/soap/envelope/")
	env.CreateElement("S:Body").AddChild(signed)
	b, err := doc.WriteToBytes()
	return b, lr.ID, err
}

// postSOAPLogout sends one LogoutRequest over the SOAP binding and checks
// the LogoutResponse: it must answer this request with status Success
// (PartialLogout counts as delivered: the SP ended what it could).
func (s *IdP) postSOAPLogout(ctx context.Context, sp samlSP, ep saml.Endpoint, n school.LogoutNotice) error {
	body, id, err := s.soapLogoutRequest(ctx, sp, ep, n)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.Location, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("SOAPAction", "http://www.oasis-open.org/committees/security")
	resp, err := s.opt.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, int64(s.opt.MaxMessageBytes)+1))
	if err != nil {
		return err
	}
	var env soapEnvelope
	if xerr := xml.Unmarshal(raw, &env); xerr != nil || (env.Body.LogoutResponse == nil && env.Body.Fault == nil) {
		return fmt.Errorf("status %d, no SOAP LogoutResponse", resp.StatusCode)
	}
	if f := env.Body.Fault; f != nil {
		return fmt.Errorf("SOAP fault %s: %s", f.Code, f.String)
	}
	lr := env.Body.LogoutResponse
	if lr.InResponseTo != id {
		return fmt.Errorf("LogoutResponse answers %q, not %q", lr.InResponseTo, id)
	}
	code := lr.Status.StatusCode.Value
	if code == saml.StatusSuccess {
		return nil
	}
	if sub := lr.Status.StatusCode.StatusCode; sub != nil && sub.Value == "urn:oasis:names:tc:SAML:2.0:status:PartialLogout" {
		return nil
	}
	msg := ""
	if lr.Status.StatusMessage != nil {
		msg = lr.Status.StatusMessage.Value
	}
	return fmt.Errorf("LogoutResponse status %s %s", code, msg)
}
