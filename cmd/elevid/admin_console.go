package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/elevid/elevid/console"
	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/school"
)

// adminConsoleUsage documents the console's admin commands.
const adminConsoleUsage = `Staff and enrolment (console):
  create-operator --username U --name N [--password-file F]
  staff list   --school CODE|instance
  staff invite --school CODE --username U --name N --role teacher|school_admin [--email E] [--class NAME]…
  staff reset  --username U        new one-time password, passkeys deleted, sessions ended; TOTP is set up again at the next sign-in
  staff disable --username U
  enrolment sheet --school CODE --class NAME   issue codes for the class (pupils with consent) and print them
`

// adminCreateOperator bootstraps an operator with a password and TOTP.
func adminCreateOperator(ctx context.Context, a *app, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("create-operator", flag.ContinueOnError)
	username := fs.String("username", "", "operator username")
	name := fs.String("name", "", "full name")
	pwFile := fs.String("password-file", "", "file holding the password (default: print a one-time password)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *username == "" || *name == "" {
		return errors.New("give --username and --name")
	}
	password := ""
	if *pwFile != "" {
		b, err := os.ReadFile(*pwFile)
		if err != nil {
			return err
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	pw, cr, err := console.CreateOperator(ctx, a.store, a.sealer, *username, *name, password)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "created operator %s\n", *username)
	if *pwFile == "" {
		fmt.Fprintf(out, "one-time password: %s\n(change it under My account after signing in)\n", pw)
	}
	fmt.Fprintf(out, "TOTP: add this to an authenticator app:\n  %s\n  secret: %s\nrecovery codes (each works once; keep them safe):\n", cr.TOTP.URL(), cr.TOTP.Secret())
	for _, c := range cr.RecoveryCodes {
		fmt.Fprintf(out, "  %s\n", c)
	}
	return nil
}

func adminStaff(ctx context.Context, a *app, out io.Writer, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: elevid admin staff list|invite|reset|disable …")
	}
	fs := flag.NewFlagSet("staff "+args[0], flag.ContinueOnError)
	code := fs.String("school", "", "school code (or instance for operators)")
	username := fs.String("username", "", "username")
	name := fs.String("name", "", "full name")
	email := fs.String("email", "", "e-mail address")
	role := fs.String("role", "teacher", "teacher or school_admin")
	var classes multiFlag
	fs.Var(&classes, "class", "class name (repeatable)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "list":
		chain, err := chainOf(ctx, a, *code)
		if err != nil {
			return err
		}
		list, err := a.store.ListStaff(ctx, chain)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USERNAME\tNAME\tROLE\tTOTP\tDISABLED\tID")
		for _, s := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%t\t%s\n", s.Username, s.Name, s.Role, len(s.TOTPSecret) > 0, s.Disabled, s.ID)
		}
		return tw.Flush()
	case "invite":
		s, err := a.store.SchoolByCode(ctx, *code)
		if err != nil {
			return fmt.Errorf("school %q: %w", *code, err)
		}
		ids, err := classIDs(ctx, a, s.ID, classes)
		if err != nil {
			return err
		}
		st, pw, err := console.InviteStaff(ctx, a.store, console.Invite{SchoolID: s.ID, Username: *username, Name: *name, Email: *email,
			Role: school.Role(*role), ClassIDs: ids})
		if errors.Is(err, school.ErrConflict) {
			return fmt.Errorf("the username %q is taken", *username)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "invited %s (%s) to %s\none-time password: %s\nTOTP is set up at the first sign-in at %s/console\n", st.Username, st.Role, s.Code, pw, a.cfg.Issuer)
		return nil
	case "reset", "disable":
		st, err := a.store.StaffByUsername(ctx, strings.ToLower(*username))
		if err != nil {
			return fmt.Errorf("staff %q: %w", *username, err)
		}
		if args[0] == "disable" {
			err = a.store.InTx(ctx, func(q school.Queries) error {
				if _, err := q.UpdateStaff(ctx, st.ID, func(s school.Staff) (school.Staff, error) { s.Disabled = true; return s, nil }); err != nil {
					return err
				}
				if _, err := q.RevokeSessions(ctx, st.ID, "disabled"); err != nil {
					return err
				}
				_, err := q.AppendAudit(ctx, school.AuditEntry{SchoolID: st.SchoolID, ActorID: "cli", ActorRole: string(school.RoleOperator), Action: "staff.disable", SubjectID: st.ID})
				return err
			})
			if err == nil {
				fmt.Fprintf(out, "disabled %s\n", st.Username)
			}
			return err
		}
		pw, err := console.ResetStaff(ctx, a.store, console.DefaultArgon2, st.ID, "cli", school.RoleOperator)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "reset %s: one-time password %s; passkeys deleted; TOTP is set up again at the next sign-in\n", st.Username, pw)
		return nil
	}
	return fmt.Errorf("unknown staff command %q", args[0])
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func classIDs(ctx context.Context, a *app, schoolID string, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	all, err := a.store.ListClasses(ctx, schoolID)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		found := false
		for _, c := range all {
			if strings.EqualFold(c.Name, n) {
				out, found = append(out, c.ID), true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("no class %q in the school", n)
		}
	}
	return out, nil
}

func adminEnrolment(ctx context.Context, a *app, out io.Writer, args []string) error {
	if len(args) == 0 || args[0] != "sheet" {
		return errors.New("usage: elevid admin enrolment sheet --school CODE --class NAME [--replace]")
	}
	fs := flag.NewFlagSet("enrolment sheet", flag.ContinueOnError)
	code := fs.String("school", "", "school code")
	class := fs.String("class", "", "class name")
	replace := fs.Bool("replace", false, "replace codes handed out earlier (they stop working); by default they stay valid and get no new card")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	s, err := a.store.SchoolByCode(ctx, *code)
	if err != nil {
		return fmt.Errorf("school %q: %w", *code, err)
	}
	ids, err := classIDs(ctx, a, s.ID, []string{*class})
	if err != nil {
		return err
	}
	flows, err := cliFlows(a)
	if err != nil {
		return err
	}
	res, err := console.SheetCodes(ctx, a.store, flows, a.cfg.Issuer, s.ID, ids[0],
		enrolment.Actor{ID: "cli", Role: school.RoleOperator}, *replace)
	if err != nil {
		return err
	}
	cards, waiting, enrolled := res.Cards, res.Waiting, res.Enrolled
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PUPIL\tCLASS\tCODE\tEXPIRES\tURL")
	for _, c := range cards {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Name, c.Class, c.Code, c.Expires.Format(time.DateOnly), c.URL)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(waiting) > 0 {
		fmt.Fprintf(out, "waiting for consent (no code): %s\n", strings.Join(waiting, ", "))
	}
	if len(enrolled) > 0 {
		fmt.Fprintf(out, "already have a passkey: %s\n", strings.Join(enrolled, ", "))
	}
	if len(res.Declined) > 0 {
		fmt.Fprintf(out, "a guardian said no (no code): %s\n", strings.Join(res.Declined, ", "))
	}
	if len(res.Outstanding) > 0 {
		fmt.Fprintf(out, "codes handed out earlier still work (no new code; --replace replaces them): %s\n", strings.Join(res.Outstanding, ", "))
	}
	if len(res.Replaced) > 0 {
		fmt.Fprintf(out, "new codes replace the ones handed out earlier (those no longer work): %s\n", strings.Join(res.Replaced, ", "))
	}
	return nil
}
