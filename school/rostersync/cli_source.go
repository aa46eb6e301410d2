package rostersync

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/elevid/elevid/school"
)

type attrFlags map[string]string

func (a attrFlags) String() string { return fmt.Sprint(map[string]string(a)) }
func (a attrFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want key=attribute, got %q", v)
	}
	a[k] = val
	return nil
}

func sourceSet(ctx context.Context, st school.Store, sealer *school.Sealer, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("sync source set", flag.ContinueOnError)
	fs.SetOutput(out)
	code := fs.String("school", "", "school code")
	allSchools := fs.Bool("all-schools", false, "set the same source for every school ({school} in base DNs, or --school-attr, picks each school's entries)")
	var src school.DirectorySource
	fs.StringVar(&src.URL, "url", "", "ldap://host:389 or ldaps://host:636")
	fs.BoolVar(&src.StartTLS, "start-tls", false, "use StartTLS on an ldap:// URL")
	fs.BoolVar(&src.Insecure, "insecure", false, "allow a plain ldap:// URL without StartTLS (the bind password and pupil data cross the network in clear)")
	caFile := fs.String("ca-file", "", "PEM file of CA certificates to trust")
	fs.StringVar(&src.BindDN, "bind-dn", "", "DN to bind as")
	pwFile := fs.String("password-file", "", "file holding the bind password")
	fs.StringVar(&src.Preset, "preset", school.PresetOpenLDAP, "attribute map: openldap or ad")
	fs.StringVar(&src.PupilBase, "pupil-base", "", "base DN of pupils")
	fs.StringVar(&src.PupilFilter, "pupil-filter", "", "filter for pupils (default: the preset's)")
	fs.StringVar(&src.StaffBase, "staff-base", "", "base DN of staff (empty: no staff sync)")
	fs.StringVar(&src.StaffFilter, "staff-filter", "", "filter for staff")
	fs.StringVar(&src.ClassBase, "class-base", "", "base DN of class groups")
	fs.StringVar(&src.ClassFilter, "class-filter", "", "filter for class groups")
	fs.StringVar(&src.GuardianBase, "guardian-base", "", "base DN of guardians")
	fs.StringVar(&src.GuardianFilter, "guardian-filter", "", "filter for guardians")
	fs.StringVar(&src.SchoolAttr, "school-attr", "", "attribute holding the school code on every entry (adds (ATTR=code) to each filter)")
	fs.IntVar(&src.PageSize, "page-size", school.DefaultSyncPageSize, "paged-search page size")
	fs.DurationVar(&src.Interval, "interval", 0, "scheduled run interval in elevid serve (0: none)")
	fs.DurationVar(&src.FullInterval, "full-interval", 0, "full-run interval when scheduled runs are incremental (0: every run is full)")
	fs.DurationVar(&src.Grace, "grace", school.DefaultQuarantineGrace, "quarantine before a gone pupil is removed")
	fs.IntVar(&src.MaxDeletePercent, "max-delete-percent", school.DefaultMaxDeletePercent, "deletion threshold in % of active pupils")
	fs.IntVar(&src.MaxDeletions, "max-deletions", school.DefaultMaxDeletions, "deletion threshold in pupils")
	attrs := attrFlags{}
	fs.Var(attrs, "attr", "attribute map override key=attribute (repeatable)")
	skipCheck := fs.Bool("skip-schema-check", false, "do not connect to check that the date-of-birth attribute exists in the directory's schema")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var schools []school.School
	if *allSchools {
		if *code != "" {
			return errors.New("--all-schools sets every school's source: leave out --school")
		}
		if src.SchoolAttr == "" && !strings.Contains(src.PupilBase, school.SchoolPlaceholder) {
			return fmt.Errorf("with --all-schools, the pupil base must hold %s or --school-attr must be set: else every school would get every pupil", school.SchoolPlaceholder)
		}
		all, err := st.ListSchools(ctx)
		if err != nil {
			return err
		}
		schools = all
	} else {
		sch, err := schoolByCode(ctx, st, *code)
		if err != nil {
			return err
		}
		schools = []school.School{sch}
	}
	if len(schools) == 0 {
		return errors.New("there are no schools: elevid admin create-school first")
	}
	src.Attributes = attrs
	var caPEM string
	if *caFile != "" {
		b, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		caPEM = string(b)
	}
	var password []byte
	if *pwFile != "" {
		b, err := os.ReadFile(*pwFile)
		if err != nil {
			return err
		}
		if sealer == nil {
			return errors.New("no sealing key configured: cannot store a bind password")
		}
		password = []byte(strings.TrimRight(string(b), "\r\n"))
	}
	src.CAPEM = caPEM
	if err := checkTransport(src); err != nil {
		return err
	}
	// Check everything before the first write: a bad flag changes no school.
	for _, sch := range schools {
		one := src
		one.SchoolID = sch.ID
		one.BindPassword = []byte{1}
		if err := ValidateSource(one); err != nil {
			return err
		}
		if err := one.WithDefaults().Validate(); err != nil {
			return err
		}
	}
	if !*skipCheck {
		if err := checkSchema(ctx, st, sealer, src, schools[0], password); err != nil {
			return err
		}
	}
	for _, sch := range schools {
		one := src
		one.SchoolID = sch.ID
		old, err := st.GetDirectorySource(ctx, sch.ID)
		if err == nil {
			one.LastFullRun, one.LastIncrementalRun = old.LastFullRun, old.LastIncrementalRun
			one.BindPassword = old.BindPassword
		} else if !errors.Is(err, school.ErrNotFound) {
			return err
		}
		if password != nil {
			one.BindPassword = sealer.Seal(password, "ldap:"+sch.ID)
		}
		if _, err := st.PutDirectorySource(ctx, one); err != nil {
			return fmt.Errorf("school %s: %w", sch.Code, err)
		}
		if _, err := st.AppendAudit(ctx, school.AuditEntry{SchoolID: sch.ID, ActorID: "cli", ActorRole: string(school.RoleOperator), Action: "sync.source.set", SubjectID: sch.ID}); err != nil {
			return err
		}
	}
	if len(schools) == 1 && !*allSchools {
		fmt.Fprintf(out, "directory source of %s saved\n", schools[0].Code)
	} else {
		fmt.Fprintf(out, "directory source of %d schools saved\n", len(schools))
	}
	return nil
}

// checkSchema connects to the directory of src (as school sch, with
// password or the stored one) and fails when its schema lacks the
// date-of-birth attribute the source maps.
func checkSchema(ctx context.Context, st school.Store, sealer *school.Sealer, src school.DirectorySource, sch school.School, password []byte) error {
	src.SchoolID = sch.ID
	am, err := newAttrMap(src.WithDefaults())
	if err != nil {
		return err
	}
	pw := string(password)
	if password == nil {
		if old, err := st.GetDirectorySource(ctx, sch.ID); err == nil && len(old.BindPassword) > 0 && sealer != nil {
			if b, err := sealer.Open(old.BindPassword, "ldap:"+sch.ID); err == nil {
				pw = string(b)
			}
		}
	}
	attr := am.get(AttrBirthDate)
	missing, err := CheckAttributes(ctx, src.WithDefaults(), pw, 30*time.Second, attr)
	if err != nil {
		return fmt.Errorf("checking the directory's schema for the date-of-birth attribute %q: %w (--skip-schema-check saves without checking)", attr, err)
	}
	if len(missing) > 0 {
		return fmt.Errorf("the directory's schema has no attribute %q for the date of birth: name the attribute that holds it with --attr birthDate=ATTRIBUTE", attr)
	}
	return nil
}

func sourceShow(ctx context.Context, st school.Store, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("sync source show", flag.ContinueOnError)
	fs.SetOutput(out)
	code := fs.String("school", "", "school code")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sch, err := schoolByCode(ctx, st, *code)
	if err != nil {
		return err
	}
	src, err := st.GetDirectorySource(ctx, sch.ID)
	if errors.Is(err, school.ErrNotFound) {
		return fmt.Errorf("school %s has no directory source", sch.Code)
	}
	if err != nil {
		return err
	}
	pw := "none"
	if len(src.BindPassword) > 0 {
		pw = "set (sealed)"
	}
	fmt.Fprintf(out, "url:        %s (StartTLS %v, CA bundle %v)\nbind dn:    %s\npassword:   %s\npreset:     %s %v\n",
		src.URL, src.StartTLS, src.CAPEM != "", src.BindDN, pw, src.Preset, src.Attributes)
	for _, b := range [][3]string{{"pupils", src.PupilBase, src.PupilFilter}, {"staff", src.StaffBase, src.StaffFilter},
		{"classes", src.ClassBase, src.ClassFilter}, {"guardians", src.GuardianBase, src.GuardianFilter}} {
		fmt.Fprintf(out, "%-11s %s %s\n", b[0]+":", b[1], b[2])
	}
	fmt.Fprintf(out, "page size:  %d\ninterval:   %s (full every %s)\ngrace:      %s\nthreshold:  %d %% or %d pupils\nlast full:  %s\nlast incr.: %s\n",
		src.PageSize, src.Interval, src.FullInterval, src.Grace, src.MaxDeletePercent, src.MaxDeletions, src.LastFullRun, src.LastIncrementalRun)
	return nil
}
