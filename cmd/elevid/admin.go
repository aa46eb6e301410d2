package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/school"
)

const adminUsage = `Usage: elevid admin COMMAND [flags]

Schools:
  create-school --code CODE --name NAME --domain DOMAIN
  schools
Audit log:
  audit anchor [--school CODE|instance]
      print the current head of every audit chain (or one) as CODE:SEQ:HASH
      lines: keep them outside the database
  audit verify --school CODE|instance [--anchor CODE:SEQ:HASH]... [--anchors FILE]
      check the chain (keyed entries under the audit keys) and that it still
      holds every given anchor of that chain (rewrites and truncations fail)
  audit list   --school CODE|instance [--limit N]
`

// adminCommands maps `elevid admin` subcommands to their functions;
// capability packages add theirs in adminExtra.
func cmdAdmin(ctx context.Context, a *app, out io.Writer, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(out, adminUsage, adminExtraUsage)
		return nil
	}
	switch args[0] {
	case "create-school":
		return adminCreateSchool(ctx, a, out, args[1:])
	case "schools":
		return adminSchools(ctx, a, out)
	case "audit":
		return adminAudit(ctx, a, out, args[1:])
	}
	if fn, ok := adminCommands()[args[0]]; ok {
		return fn(ctx, a, out, args[1:])
	}
	return fmt.Errorf("unknown admin command %q\n\n%s%s", args[0], adminUsage, adminExtraUsage)
}

// adminCommands returns the admin commands of capability packages; each
// is documented in adminExtraUsage.
func adminCommands() map[string]func(ctx context.Context, a *app, out io.Writer, args []string) error {
	return map[string]func(ctx context.Context, a *app, out io.Writer, args []string) error{
		"export":          adminExport,
		"platform":        adminPlatform,
		"create-operator": adminCreateOperator,
		"staff":           adminStaff,
		"enrolment":       adminEnrolment,
	}
}

// adminExtraUsage documents adminCommands.
const adminExtraUsage = `Learning platforms (operator):
  platform add --name N --client-id ID --redirect-uri U [--public] [--attr claim="hvorfor" --attr-en claim="why" …] [--shared eduperson_principal_name] [--offline-access] [--backchannel-logout-uri U]
  platform add-saml --name N --metadata FILE|--metadata-url URL [--attr name="hvorfor" --attr-en name="why" …] [--nameid persistent|transient]
  platform list | show ID | logouts | remove ID
  platform activate|deactivate --school CODE --platform ID   (the platforms a school uses; deactivation ends access)
Data rights:
  export --school CODE --pupil ID       everything held about a pupil, as JSON (subject access request)
` + adminConsoleUsage + adminBackupUsage

// adminPlatform registers and lists learning platforms (OIDC and SAML).
func adminPlatform(ctx context.Context, a *app, out io.Writer, args []string) error {
	if len(args) > 0 && (args[0] == "activate" || args[0] == "deactivate") {
		return adminPlatformActivation(ctx, a, out, args[0] == "activate", args[1:])
	}
	return platformCommand(ctx, a.store, out, args)
}

// adminPlatformActivation is `elevid admin platform activate|deactivate
// --school CODE --platform ID` (ID: the platform's id or client id). It
// builds the same wiring as serve, so that a deactivation ends access as
// a withdrawal does (back-channel logout, token revocation).
func adminPlatformActivation(ctx context.Context, a *app, out io.Writer, active bool, args []string) error {
	verb := "deactivate"
	if active {
		verb = "activate"
	}
	fs := flag.NewFlagSet("platform "+verb, flag.ContinueOnError)
	fs.SetOutput(out)
	code := fs.String("school", "", "school code")
	id := fs.String("platform", "", "platform id or client id")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *code == "" || *id == "" {
		return fmt.Errorf("platform %s: --school and --platform are required", verb)
	}
	s, err := a.store.SchoolByCode(ctx, *code)
	if err != nil {
		return fmt.Errorf("platform %s: school %q: %w", verb, *code, err)
	}
	pf, err := a.store.GetPlatform(ctx, *id)
	if errors.Is(err, school.ErrNotFound) {
		pf, err = a.store.PlatformByClientID(ctx, *id)
	}
	if err != nil {
		return fmt.Errorf("platform %s: platform %q: %w", verb, *id, err)
	}
	_, w, err := newHandler(ctx, a, false)
	if err != nil {
		return err
	}
	if w.consent == nil {
		return fmt.Errorf("platform %s: the consent service is not available", verb)
	}
	changed, err := w.consent.SetPlatformActivation(ctx, enrolment.Actor{ID: "cli", Role: school.RoleOperator}, s.ID, pf.ID, active)
	if err != nil {
		return fmt.Errorf("platform %s: %w", verb, err)
	}
	switch {
	case !changed && active:
		fmt.Fprintf(out, "%s was already active for %s\n", pf.Name, s.Code)
	case !changed:
		fmt.Fprintf(out, "%s was not active for %s\n", pf.Name, s.Code)
	case active:
		fmt.Fprintf(out, "activated %s (%s) for %s\n", pf.Name, pf.ClientID, s.Code)
	default:
		fmt.Fprintf(out, "deactivated %s (%s) for %s; its access to the school's pupils has ended\n", pf.Name, pf.ClientID, s.Code)
	}
	return nil
}

func adminCreateSchool(ctx context.Context, a *app, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("create-school", flag.ContinueOnError)
	code := fs.String("code", "", "short school code (a-z, 0-9, -)")
	name := fs.String("name", "", "school name")
	domain := fs.String("domain", "", "home-organization domain for scoped identifiers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var s school.School
	err := a.store.InTx(ctx, func(q school.Queries) error {
		var err error
		s, err = q.CreateSchool(ctx, school.School{Code: *code, Name: *name, Domain: strings.ToLower(*domain)})
		if err != nil {
			return err
		}
		_, err = q.AppendAudit(ctx, school.AuditEntry{SchoolID: school.InstanceChain, ActorID: "cli", ActorRole: string(school.RoleOperator),
			Action: "school.create", SubjectID: s.ID, Detail: "code=" + s.Code})
		return err
	})
	if errors.Is(err, school.ErrConflict) {
		return fmt.Errorf("a school with code %q exists already", *code)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "created school %s (%s), id %s\n", s.Code, s.Name, s.ID)
	return nil
}

func adminSchools(ctx context.Context, a *app, out io.Writer) error {
	list, err := a.store.ListSchools(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CODE\tNAME\tDOMAIN\tID")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Code, s.Name, s.Domain, s.ID)
	}
	return tw.Flush()
}

// auditAnchor prints the head of every chain (or of code's) as
// CODE:SEQ:HASH lines, "instance" for the operators' chain.
func auditAnchor(ctx context.Context, a *app, out io.Writer, code string) error {
	want := ""
	if code != "" {
		c, err := chainOf(ctx, a, code)
		if err != nil {
			return err
		}
		want = c
	}
	heads, err := a.store.AuditHeads(ctx)
	if err != nil {
		return err
	}
	for _, h := range heads {
		if code != "" && h.SchoolID != want {
			continue
		}
		name := "instance"
		if h.SchoolID != school.InstanceChain {
			s, err := a.store.GetSchool(ctx, h.SchoolID)
			if err != nil {
				return err
			}
			name = s.Code
		}
		fmt.Fprintf(out, "%s:%d:%s\n", name, h.Seq, hex.EncodeToString(h.Hash))
	}
	return nil
}

// parseAnchor reads CODE:SEQ:HASH.
func parseAnchor(ctx context.Context, a *app, s string) (school.AuditAnchor, error) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	if len(parts) != 3 {
		return school.AuditAnchor{}, fmt.Errorf("anchor %q: want CODE:SEQ:HASH", s)
	}
	chain, err := chainOf(ctx, a, parts[0])
	if err != nil {
		return school.AuditAnchor{}, fmt.Errorf("anchor %q: %w", s, err)
	}
	seq, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || seq < 1 {
		return school.AuditAnchor{}, fmt.Errorf("anchor %q: bad sequence number", s)
	}
	h, err := hex.DecodeString(parts[2])
	if err != nil || len(h) != 32 {
		return school.AuditAnchor{}, fmt.Errorf("anchor %q: bad hash", s)
	}
	return school.AuditAnchor{SchoolID: chain, Seq: seq, Hash: h}, nil
}

// chainOf resolves a --school flag value to an audit chain id.
func chainOf(ctx context.Context, a *app, code string) (string, error) {
	if code == "instance" {
		return school.InstanceChain, nil
	}
	if code == "" {
		return "", errors.New("give --school CODE (or instance)")
	}
	s, err := a.store.SchoolByCode(ctx, code)
	if err != nil {
		return "", fmt.Errorf("school %q: %w", code, err)
	}
	return s.ID, nil
}

func adminAudit(ctx context.Context, a *app, out io.Writer, args []string) error {
	if len(args) == 0 || (args[0] != "verify" && args[0] != "list" && args[0] != "anchor") {
		return errors.New("usage: elevid admin audit anchor|verify|list --school CODE|instance")
	}
	fs := flag.NewFlagSet("audit "+args[0], flag.ContinueOnError)
	code := fs.String("school", "", "school code, or instance")
	limit := fs.Int("limit", 50, "entries to list")
	var anchorArgs []string
	fs.Func("anchor", "an anchor CODE:SEQ:HASH (as printed by audit anchor); repeatable", func(s string) error {
		anchorArgs = append(anchorArgs, s)
		return nil
	})
	anchorFile := fs.String("anchors", "", "file of anchors, one CODE:SEQ:HASH a line")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if args[0] == "anchor" {
		return auditAnchor(ctx, a, out, *code)
	}
	chain, err := chainOf(ctx, a, *code)
	if err != nil {
		return err
	}
	if args[0] == "verify" {
		if *anchorFile != "" {
			b, err := os.ReadFile(*anchorFile)
			if err != nil {
				return err
			}
			for line := range strings.Lines(string(b)) {
				if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
					anchorArgs = append(anchorArgs, line)
				}
			}
		}
		var anchors []school.AuditAnchor
		for _, s := range anchorArgs {
			an, err := parseAnchor(ctx, a, s)
			if err != nil {
				return err
			}
			if an.SchoolID == chain {
				anchors = append(anchors, an)
			}
		}
		if len(anchorArgs) > 0 && len(anchors) == 0 {
			return fmt.Errorf("none of the anchors is of chain %q", *code)
		}
		if err := a.store.VerifyAudit(ctx, chain, anchors...); err != nil {
			return err
		}
		fmt.Fprintf(out, "audit chain intact (%d anchors checked)\n", len(anchors))
		return nil
	}
	list, err := a.store.ListAudit(ctx, school.AuditFilter{SchoolID: chain, Limit: *limit})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tACTION\tSUBJECT\tDETAIL")
	for _, e := range list {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Format(time.RFC3339), e.ActorID, e.Action, e.SubjectID, e.Detail)
	}
	return tw.Flush()
}
