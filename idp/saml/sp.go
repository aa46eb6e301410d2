package saml

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/crewjam/saml"
	"github.com/elevid/elevid/school"
)

// samlSP is a registered SAML platform with its parsed metadata.
type samlSP struct {
	Platform school.Platform
	Settings Settings
	Metadata *saml.EntityDescriptor
}

// samlSPCache parses each platform's metadata once per version.
type samlSPCache struct {
	mu sync.Mutex
	m  map[string]samlSP // platform id → parsed
}

// lookup returns the SAML platform with entity id entityID, or an error
// wrapping os.ErrNotExist (as crewjam's ServiceProviderProvider wants)
// when there is none.
func (c *samlSPCache) lookup(ctx context.Context, st school.PlatformStore, entityID string) (samlSP, error) {
	p, err := st.PlatformByClientID(ctx, entityID)
	if errors.Is(err, school.ErrNotFound) || (err == nil && p.Protocol != school.ProtocolSAML) {
		return samlSP{}, fmt.Errorf("saml service provider %q: %w", entityID, os.ErrNotExist)
	}
	if err != nil {
		return samlSP{}, err
	}
	return c.parse(p)
}

func (c *samlSPCache) parse(p school.Platform) (samlSP, error) {
	c.mu.Lock()
	if sp, ok := c.m[p.ID]; ok && sp.Platform.UpdatedAt.Equal(p.UpdatedAt) {
		c.mu.Unlock()
		sp.Platform = p
		return sp, nil
	}
	c.mu.Unlock()
	set, err := ParseSettings(p.Settings)
	if err != nil {
		return samlSP{}, fmt.Errorf("platform %s: %w", p.ID, err)
	}
	ed, _, err := ParseSPMetadata([]byte(set.MetadataXML))
	if err != nil {
		return samlSP{}, fmt.Errorf("platform %s: %w", p.ID, err)
	}
	if ed.EntityID != p.ClientID {
		return samlSP{}, fmt.Errorf("platform %s: metadata entity id %q differs from client id %q", p.ID, ed.EntityID, p.ClientID)
	}
	if set.WantSignedRequests {
		t := true
		for i := range ed.SPSSODescriptors {
			ed.SPSSODescriptors[i].AuthnRequestsSigned = &t
		}
	}
	sp := samlSP{Platform: p, Settings: set, Metadata: ed}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]samlSP{}
	}
	c.m[p.ID] = sp
	c.mu.Unlock()
	return sp, nil
}

// parseEntityDescriptor reads an EntityDescriptor, or the only one with an
// SPSSODescriptor inside an EntitiesDescriptor.
func parseEntityDescriptor(b []byte) (*saml.EntityDescriptor, error) {
	var ed saml.EntityDescriptor
	errOne := xml.Unmarshal(b, &ed)
	if errOne == nil {
		return &ed, nil
	}
	var eds saml.EntitiesDescriptor
	if err := xml.Unmarshal(b, &eds); err != nil {
		return nil, errOne
	}
	var found *saml.EntityDescriptor
	for i := range eds.EntityDescriptors {
		if len(eds.EntityDescriptors[i].SPSSODescriptors) > 0 {
			if found != nil {
				return nil, errors.New("several service providers in one EntitiesDescriptor; give one")
			}
			found = &eds.EntityDescriptors[i]
		}
	}
	if found == nil {
		return nil, errors.New("no service provider in EntitiesDescriptor")
	}
	return found, nil
}

// samlSLOBindings are the single logout bindings ElevID sends on (SOAP:
// the back-channel logout when access ends).
var samlSLOBindings = map[string]bool{saml.HTTPRedirectBinding: true, saml.HTTPPostBinding: true, saml.SOAPBinding: true}

// SLOBinding reports whether ElevID sends single logout messages on
// binding (HTTP-Redirect, HTTP-POST or SOAP).
func SLOBinding(binding string) bool { return samlSLOBindings[binding] }
