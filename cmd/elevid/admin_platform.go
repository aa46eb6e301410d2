package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/elevid/elevid/idp/oidc"
	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/school"
)

// attrFlagSet collects the repeatable attribute flags of platform
// registration: --attr NAME="Danish justification", --attr-en
// NAME="English justification" (both required for every attribute) and
// --shared NAME (the shared form of an identifier).
type attrFlagSet struct {
	da, en []school.AttributeGrant
	shared multiFlag
}

type justFlag struct {
	into *[]school.AttributeGrant
}

func (j justFlag) String() string { return "" }
func (j justFlag) Set(v string) error {
	name, why, ok := strings.Cut(v, "=")
	why = strings.Trim(strings.TrimSpace(why), `"`)
	if !ok || strings.TrimSpace(name) == "" || why == "" {
		return fmt.Errorf("want name=\"justification\", got %q", v)
	}
	*j.into = append(*j.into, school.AttributeGrant{Name: strings.TrimSpace(name), JustificationDA: why})
	return nil
}

// register adds the flags to fs; known lists the attribute names for the
// usage text.
func (a *attrFlagSet) register(fs *flag.FlagSet, known string) {
	fs.Var(justFlag{into: &a.da}, "attr", `attribute="Danish justification" (repeatable; shown to guardians); attributes: `+known)
	fs.Var(justFlag{into: &a.en}, "attr-en", `attribute="English justification" (required for every --attr)`)
	fs.Var(&a.shared, "shared", "release the shared (cross-platform) form of this identifier instead of the pairwise one: eduperson_principal_name (repeatable)")
}

// grants returns the attributes with both justifications, or every
// problem at once.
func (a *attrFlagSet) grants() ([]school.AttributeGrant, error) {
	var problems []string
	en := map[string]string{}
	for _, g := range a.en {
		en[g.Name] = g.JustificationDA
	}
	out := []school.AttributeGrant{}
	for _, g := range a.da {
		g.JustificationEN = en[g.Name]
		if g.JustificationEN == "" {
			problems = append(problems, fmt.Sprintf("--attr %s needs an English justification (--attr-en %s=\"…\")", g.Name, g.Name))
		}
		delete(en, g.Name)
		g.Shared = slices.Contains(a.shared, g.Name)
		out = append(out, g)
	}
	for name := range en {
		problems = append(problems, fmt.Sprintf("--attr-en %s has no --attr %s with the Danish justification", name, name))
	}
	for _, name := range a.shared {
		if !release.SharedCapable(name) {
			problems = append(problems, fmt.Sprintf("--shared %s: only eduperson_principal_name has a shared form", name))
		} else if !slices.ContainsFunc(out, func(g school.AttributeGrant) bool { return g.Name == name }) {
			problems = append(problems, fmt.Sprintf("--shared %s needs --attr %s", name, name))
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return out, nil
}

// platformCommand is `elevid admin platform …`:
//
//	add --name N --client-id ID --redirect-uri U [--redirect-uri U2 …]
//	    [--public] [--attr given_name="why" …] [--offline-access]
//	    [--post-logout-redirect-uri U …] [--backchannel-logout-uri U]
//	    [--sector-id S] [--subject public --subject-reason R] [--alg RS256]
//	add-saml …            (see samlPlatformCommand)
//	list
//	show CLIENT-ID
//	logouts          back-channel logouts waiting for a retry
//	remove CLIENT-ID
//
// add prints the generated client secret once; only its hash is stored.
func platformCommand(ctx context.Context, st school.Store, out io.Writer, args []string) error {
	if len(args) == 0 {
		return errors.New("platform: want add, add-saml, list, show, logouts or remove")
	}
	switch args[0] {
	case "add":
		return platformAdd(ctx, st, out, args[1:])
	case "add-saml":
		return samlPlatformCommand(ctx, st, out, args[1:])
	case "list":
		list, err := st.ListPlatforms(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLIENT ID\tPROTOCOL\tNAME\tSUBJECT\tATTRIBUTES")
		for _, p := range list {
			var names []string
			for _, a := range p.Attributes {
				names = append(names, a.Name)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.ClientID, p.Protocol, p.Name, p.SubjectType, strings.Join(names, ","))
		}
		return tw.Flush()
	case "show":
		if len(args) != 2 {
			return errors.New("platform show: want CLIENT-ID")
		}
		p, err := st.PlatformByClientID(ctx, args[1])
		if err != nil {
			return fmt.Errorf("platform show: %w", err)
		}
		fmt.Fprintf(out, "id %s\nname %s\nprotocol %s\nclient id %s\nsubject %s %s\n", p.ID, p.Name, p.Protocol, p.ClientID, p.SubjectType, p.SubjectTypeReason)
		for _, a := range p.Attributes {
			shared := ""
			if a.Shared {
				shared = " (shared identifier)"
			}
			fmt.Fprintf(out, "attribute %s%s: da %q, en %q\n", a.Name, shared, a.JustificationDA, a.JustificationEN)
		}
		if p.Protocol == school.ProtocolOIDC {
			if s, err := oidc.ParseSettings(p.Settings); err == nil {
				s.SecretHash = strings.Repeat("*", min(len(s.SecretHash), 8))
				b, _ := json.MarshalIndent(s, "", "  ")
				fmt.Fprintf(out, "settings %s\n", b)
			}
		}
		if p.Protocol == school.ProtocolSAML {
			return showSAMLPlatform(out, p)
		}
		return nil
	case "logouts":
		return listQueuedLogouts(ctx, st, out)
	case "remove":
		if len(args) != 2 {
			return errors.New("platform remove: want CLIENT-ID")
		}
		p, err := st.PlatformByClientID(ctx, args[1])
		if err != nil {
			return fmt.Errorf("platform remove: %w", err)
		}
		if err := st.DeletePlatform(ctx, p.ID); err != nil {
			return fmt.Errorf("platform remove: %w", err)
		}
		fmt.Fprintf(out, "removed %s (%s)\n", p.ClientID, p.Name)
		return nil
	}
	return fmt.Errorf("platform: unknown subcommand %q", args[0])
}

// listQueuedLogouts prints the back-channel logouts that platforms have
// not taken yet, oldest first.
func listQueuedLogouts(ctx context.Context, st school.Store, out io.Writer) error {
	list, err := st.ListLogouts(ctx)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintln(out, "no back-channel logouts waiting")
		return nil
	}
	clients := map[string]string{}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT ID\tQUEUED\tATTEMPTS\tNEXT ATTEMPT\tGIVEN UP AT\tLAST ERROR")
	for _, n := range list {
		id, ok := clients[n.PlatformID]
		if !ok {
			id = n.PlatformID
			if p, err := st.GetPlatform(ctx, n.PlatformID); err == nil {
				id = p.ClientID
			}
			clients[n.PlatformID] = id
		}
		next := n.NextAt.UTC().Format(time.RFC3339)
		if !n.NextAt.Before(n.ExpiresAt) {
			next = "never (refused)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", id, n.CreatedAt.UTC().Format(time.RFC3339), n.Attempts, next,
			n.ExpiresAt.UTC().Format(time.RFC3339), n.LastError)
	}
	return tw.Flush()
}

func platformAdd(ctx context.Context, st school.Store, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("platform add", flag.ContinueOnError)
	fs.SetOutput(out)
	var spec oidc.PlatformSpec
	var redirects, postLogout multiFlag
	var attrs attrFlagSet
	var subject string
	fs.StringVar(&spec.Name, "name", "", "platform name shown to guardians and pupils")
	fs.StringVar(&spec.ClientID, "client-id", "", "OIDC client id")
	fs.Var(&redirects, "redirect-uri", "redirect URI (repeatable; exact match)")
	fs.Var(&postLogout, "post-logout-redirect-uri", "post-logout redirect URI (repeatable)")
	fs.StringVar(&spec.BackchannelLogoutURI, "backchannel-logout-uri", "", "back-channel logout URI")
	fs.StringVar(&spec.SectorIdentifier, "sector-id", "", "pairwise sector (default: the redirect URIs' host)")
	fs.BoolVar(&spec.Public, "public", false, "public client (no secret; PKCE S256 required)")
	fs.BoolVar(&spec.OfflineAccess, "offline-access", false, "allow refresh tokens (scope offline_access)")
	attrs.register(fs, strings.Join(oidc.KnownClaims(), ", "))
	fs.StringVar(&subject, "subject", "pairwise", "subject type: pairwise or public")
	fs.StringVar(&spec.SubjectTypeReason, "subject-reason", "", "why a public subject is needed")
	fs.StringVar(&spec.SigningAlg, "alg", oidc.AlgES256, "ID token signing algorithm: ES256 or RS256")
	if err := fs.Parse(args); err != nil {
		return err
	}
	grants, err := attrs.grants()
	if err != nil {
		return fmt.Errorf("platform add: %w", err)
	}
	spec.RedirectURIs, spec.PostLogoutRedirectURIs, spec.Attributes = redirects, postLogout, grants
	spec.SubjectType = school.SubjectType(subject)
	p, secret, err := oidc.RegisterPlatform(ctx, st, spec)
	if err != nil {
		return fmt.Errorf("platform add: %w", err)
	}
	fmt.Fprintf(out, "platform %s\nclient id %s\n", p.ID, p.ClientID)
	if secret != "" {
		fmt.Fprintf(out, "client secret %s\n(shown once: store it in the platform now; ElevID keeps only its hash)\n", secret)
	} else {
		fmt.Fprintln(out, "public client: no secret; PKCE with S256 is required")
	}
	return nil
}
