package idp

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"

	"github.com/elevid/elevid/school"
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
var errSOAPRefused = errors.New("the service provider cannot take a SOAP logout")

// RunLogoutQueue delivers the SAML logout notices of the durable queue
// (queued by package access in the transaction that ended the access)
// until ctx ends, as signed LogoutRequests over the SOAP binding: at once
// when this node queued some, and every 15 s for those of other nodes and
// retries, with the backoff of the OIDC notices (30 s, then doubling up
// to an hour apart, for a day). Every node runs it; leases keep two
// nodes from sending one notice.
func (s *SAML) RunLogoutQueue(ctx context.Context, owner string) {
	t := time.NewTicker(logoutPoll)
	defer t.Stop()
	for {
		if _, _, err := s.DeliverQueuedLogouts(ctx, owner); err != nil && ctx.Err() == nil {
			s.log.Error("saml: back-channel logout queue", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
	}
}

// DeliverQueuedLogouts claims the due SAML logout notices for owner and
// tries each once; it returns how many were delivered and how many
// failed.
func (s *SAML) DeliverQueuedLogouts(ctx context.Context, owner string) (delivered, failed int, err error) {
	for {
		batch, err := s.opt.Store.ClaimLogouts(ctx, owner, school.ProtocolSAML, logoutLease, 10)
		if err != nil || len(batch) == 0 {
			return delivered, failed, err
		}
		for _, n := range batch {
			if s.deliverQueued(ctx, owner, n) {
				delivered++
			} else {
				failed++
			}
		}
	}
}

func (s *SAML) deliverQueued(ctx context.Context, owner string, n school.LogoutNotice) bool {
	log := s.log.With("notice", n.ID, "attempt", n.Attempts)
	sp, err := s.spByID(ctx, n.PlatformID)
	var ep saml.Endpoint
	if err != nil {
		err = fmt.Errorf("%w: %v", errSOAPRefused, err)
	} else if ep, err = soapSLOEndpoint(sp); err != nil {
		err = fmt.Errorf("%w: its metadata has no SOAP single logout service", errSOAPRefused)
	}
	if err == nil {
		err = s.postSOAPLogout(ctx, sp, ep, n)
	}
	if err == nil {
		if err := s.opt.Store.LogoutDelivered(context.WithoutCancel(ctx), n.ID, owner); err != nil {
			log.Error("saml: back-channel logout delivered but not recorded", "err", err)
		} else {
			log.Info("saml: back-channel logout delivered", "sp", sp.Platform.ClientID)
		}
		return true
	}
	next := s.now().Add(school.RetryDelay(n.Attempts))
	if errors.Is(err, errSOAPRefused) {
		next = n.ExpiresAt // kept, visible, until pruned; never sent again
	}
	if rerr := s.opt.Store.LogoutFailed(context.WithoutCancel(ctx), n.ID, owner, err.Error(), next); rerr != nil {
		log.Error("saml: back-channel logout failure not recorded", "err", rerr)
	}
	log.Warn("saml: back-channel logout failed", "err", err, "next_attempt", next, "gives_up_at", n.ExpiresAt)
	return false
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
func (s *SAML) soapLogoutRequest(ctx context.Context, sp samlSP, ep saml.Endpoint, n school.LogoutNotice) ([]byte, string, error) {
	lr := &saml.LogoutRequest{
		ID: randomID(), Version: "2.0", IssueInstant: s.now().UTC(), Destination: ep.Location,
		Issuer: &saml.Issuer{Format: entityFormat, Value: s.entityID},
		NameID: &saml.NameID{Format: n.NameIDFormat, NameQualifier: s.entityID, SPNameQualifier: sp.Platform.ClientID, Value: n.Subject},
	}
	if n.SessionIndex != "" {
		lr.SessionIndex = &saml.SessionIndex{Value: n.SessionIndex}
	}
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
func (s *SAML) postSOAPLogout(ctx context.Context, sp samlSP, ep saml.Endpoint, n school.LogoutNotice) error {
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
