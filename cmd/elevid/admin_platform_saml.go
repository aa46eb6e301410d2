package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/crewjam/saml"

	idpsaml "github.com/elevid/elevid/idp/saml"
	"github.com/elevid/elevid/school"
)

// samlPlatformCommand is `elevid admin platform add-saml`: it registers a
// SAML service provider from its metadata (a file or an https URL) with the
// attributes it may receive and why.
//
//	add-saml --name NAME (--metadata FILE | --metadata-url URL)
//	         --attr givenName="Shown to the teacher" [--attr …]
//	         [--nameid persistent|transient] [--no-sign-response | --no-sign-assertion]
//	         [--no-encrypt] [--want-signed-requests]
//	         [--data-encryption aes256-cbc|aes128-cbc|aes128-gcm|aes256-gcm]
//	         [--key-transport rsa-oaep-mgf1p|rsa-oaep]
//
// Without --data-encryption and --key-transport the algorithms follow the
// SP's metadata (idpsaml.ChooseEncryption).
//
// It prints the new platform's id, entity id and endpoints to out.
func samlPlatformCommand(ctx context.Context, st school.Store, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("add-saml", flag.ContinueOnError)
	fs.SetOutput(out)
	name := fs.String("name", "", "platform name shown to guardians and pupils")
	file := fs.String("metadata", "", "SP metadata XML file")
	mdURL := fs.String("metadata-url", "", "SP metadata URL (https)")
	nameID := fs.String("nameid", "persistent", "default NameID format: persistent (pairwise) or transient")
	noSignResp := fs.Bool("no-sign-response", false, "sign only the assertion")
	noSignAssert := fs.Bool("no-sign-assertion", false, "sign only the response")
	noEncrypt := fs.Bool("no-encrypt", false, "never encrypt assertions, even when the SP publishes an encryption key")
	wantSigned := fs.Bool("want-signed-requests", false, "require signed AuthnRequests")
	dataEnc := fs.String("data-encryption", "", "content encryption of assertions: aes256-cbc, aes128-cbc, aes128-gcm or aes256-gcm (default: from the SP's metadata, else aes256-cbc)")
	keyTransport := fs.String("key-transport", "", "key transport: rsa-oaep-mgf1p or rsa-oaep, always with SHA-1 (default: from the SP's metadata, else rsa-oaep-mgf1p)")
	var flags attrFlagSet
	flags.register(fs, strings.Join(idpsaml.AttributeNames, ", "))
	if err := fs.Parse(args); err != nil {
		return err
	}
	var problems []string
	attrs, err := flags.grants()
	if err != nil {
		problems = append(problems, err.Error())
	}
	if strings.TrimSpace(*name) == "" {
		problems = append(problems, "--name is required")
	}
	if (*file == "") == (*mdURL == "") {
		problems = append(problems, "give exactly one of --metadata and --metadata-url")
	}
	for _, a := range attrs {
		if !idpsaml.ValidAttribute(a.Name) {
			problems = append(problems, fmt.Sprintf("--attr %s: unknown attribute (known: %s)", a.Name, strings.Join(idpsaml.AttributeNames, ", ")))
		}
	}
	dataURI, ok := idpsaml.DataEncryptionURI(*dataEnc)
	if *dataEnc != "" && !ok {
		problems = append(problems, fmt.Sprintf("--data-encryption %s: want aes256-cbc, aes128-cbc, aes128-gcm or aes256-gcm", *dataEnc))
	}
	keyURI, ok := idpsaml.KeyTransportURI(*keyTransport)
	if *keyTransport != "" && !ok {
		problems = append(problems, fmt.Sprintf("--key-transport %s: want rsa-oaep-mgf1p or rsa-oaep", *keyTransport))
	}
	if len(problems) > 0 {
		return fmt.Errorf("add-saml: %s", strings.Join(problems, "; "))
	}
	var data []byte
	if *file != "" {
		data, err = readLimited(*file)
	} else {
		data, err = fetchMetadata(ctx, *mdURL)
	}
	if err != nil {
		return fmt.Errorf("add-saml: %w", err)
	}
	p, set, ed, err := idpsaml.RegisterPlatform(ctx, st, idpsaml.PlatformSpec{
		Name: *name, Metadata: data, MetadataURL: *mdURL, Attributes: attrs, NameIDFormat: *nameID,
		NoSignResponse: *noSignResp, NoSignAssertion: *noSignAssert, NoEncrypt: *noEncrypt, WantSignedRequests: *wantSigned,
		DataEncryption: dataURI, KeyTransport: keyURI,
	})
	if err != nil {
		return fmt.Errorf("add-saml: %w", err)
	}
	fmt.Fprintf(out, "platform %s\nentity id %s\n", p.ID, p.ClientID)
	printSAMLSettings(out, set, ed)
	return nil
}

// printSAMLSettings prints what ElevID does for a SAML platform: NameID,
// signing, encryption (with the algorithms it chose) and the endpoints
// it uses.
func printSAMLSettings(out io.Writer, set idpsaml.Settings, ed *saml.EntityDescriptor) {
	fmt.Fprintf(out, "name id %s, sign response %t, sign assertion %t, encrypt %t, signed requests %t\n",
		set.NameIDFormat, set.SignResponse, set.SignAssertion, set.Encrypt, set.WantSignedRequests)
	if set.Encrypt {
		fmt.Fprintf(out, "encryption %s\n", idpsaml.ChooseEncryption(set, ed))
	}
	// Only the endpoints ElevID uses: it answers on HTTP-POST ACSs only
	// (a PAOS or Artifact ACS in the metadata is never used).
	for _, e := range set.ACS {
		if e.Binding == saml.HTTPPostBinding && e.Location != "" {
			fmt.Fprintf(out, "acs %s %s\n", e.Binding, e.Location)
		}
	}
	for _, e := range set.SLO {
		if idpsaml.SLOBinding(e.Binding) && e.Location != "" {
			fmt.Fprintf(out, "slo %s %s\n", e.Binding, e.Location)
		}
	}
}

// showSAMLPlatform prints a registered SAML platform's settings for
// `platform show`.
func showSAMLPlatform(out io.Writer, p school.Platform) error {
	set, err := idpsaml.ParseSettings(p.Settings)
	if err != nil {
		return err
	}
	ed, _, err := idpsaml.ParseSPMetadata([]byte(set.MetadataXML))
	if err != nil {
		return err
	}
	printSAMLSettings(out, set, ed)
	return nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readMax(f)
}

func readMax(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, idpsaml.MaxMetadataBytes+1))
	if err == nil && len(b) > idpsaml.MaxMetadataBytes {
		err = fmt.Errorf("metadata is larger than %d bytes", idpsaml.MaxMetadataBytes)
	}
	return b, err
}

var httpsOrLocal = regexp.MustCompile(`^(https://|http://(localhost|127\.0\.0\.1)(:|/))`)

func fetchMetadata(ctx context.Context, u string) ([]byte, error) {
	if !httpsOrLocal.MatchString(u) {
		return nil, fmt.Errorf("metadata URL %q must be https", u)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metadata URL %s: HTTP %d", u, resp.StatusCode)
	}
	return readMax(resp.Body)
}
