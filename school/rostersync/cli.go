package rostersync

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/elevid/elevid/school"
)

const usage = `usage:
  elevid sync --school CODE [--dry-run] [--force] [--incremental] [--pupil ID] [--show N]
  elevid sync --all [--dry-run] [--force] [--incremental] [--concurrency N]
  elevid sync source set --school CODE --url URL --preset openldap|ad --pupil-base DN [options]
  elevid sync source set --all-schools --url URL --pupil-base 'ou=pupils,ou={school},…' [options]
      one source for every school of one directory: base DNs may hold {school}
      (the school's code), and --school-attr ATTR adds (ATTR=code) to every filter
  elevid sync source show --school CODE
  elevid sync runs --school CODE [--limit N] [--run ID]
`

// Command implements `elevid sync`; args are the arguments after "sync".
// Progress and results go to out, details to log. The bind password is
// read from a file (never a flag) and sealed with sealer.
func Command(ctx context.Context, opt Options, out io.Writer, args []string) error {
	st, sealer := opt.Store, opt.Sealer
	if len(args) > 0 {
		switch args[0] {
		case "source":
			if len(args) > 1 && args[1] == "set" {
				return sourceSet(ctx, st, sealer, out, args[2:])
			}
			if len(args) > 1 && args[1] == "show" {
				return sourceShow(ctx, st, out, args[2:])
			}
			return fmt.Errorf("sync source: want set or show\n%s", usage)
		case "runs":
			return runsCmd(ctx, opt, out, args[1:])
		case "help", "-h", "--help":
			fmt.Fprint(out, usage)
			return nil
		}
	}
	fs := flag.NewFlagSet("sync", flag.ContinueOnError)
	fs.SetOutput(out)
	code := fs.String("school", "", "school code")
	dry := fs.Bool("dry-run", false, "show the changes without applying them")
	force := fs.Bool("force", false, "apply even past the deletion threshold")
	incr := fs.Bool("incremental", false, "read only entries changed since the last run (removes no one)")
	pupil := fs.String("pupil", "", "sync only the pupil with this external id (entryUUID / objectGUID)")
	show := fs.Int("show", 50, "changes to list")
	all := fs.Bool("all", false, "sync every school that has a directory source")
	conc := fs.Int("concurrency", DefaultConcurrency, "with --all: schools synced at once")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *all {
		if *code != "" || *pupil != "" {
			return fmt.Errorf("--all syncs every school: leave out --school and --pupil\n%s", usage)
		}
		mode := school.SyncFull
		if *incr {
			mode = school.SyncIncremental
		}
		return syncAll(ctx, opt, out, AllOptions{Mode: mode, DryRun: *dry, Force: *force, Concurrency: *conc})
	}
	sch, err := schoolByCode(ctx, st, *code)
	if err != nil {
		return err
	}
	mode := school.SyncFull
	if *incr {
		mode = school.SyncIncremental
	}
	p := newProgressPrinter(out)
	s := New(opt)
	res, err := s.Run(ctx, sch.ID, RunOptions{Mode: mode, DryRun: *dry, Force: *force, PupilID: *pupil, Progress: p.print})
	p.done()
	if res.Run.ID != "" {
		printRun(out, res.Run, false)
		printChanges(out, res.Changes, *show)
	}
	if errors.Is(err, ErrThreshold) {
		return fmt.Errorf("%w (use --dry-run to see the changes, --force to apply them)", err)
	}
	return err
}

// syncAll runs every school, printing a line per school as it finishes
// and a table at the end. It fails when any school failed or stopped at
// its threshold.
func syncAll(ctx context.Context, opt Options, out io.Writer, ao AllOptions) error {
	start := time.Now()
	// Decoding LDAP entries is allocation-heavy: collect garbage less
	// often, with a soft memory limit that keeps the process well under
	// 500 MB all the same.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(384 << 20))
	ao.Done = func(r SchoolResult) {
		fmt.Fprintf(out, "[%d/%d] %-12s %s\n", r.N, r.Of, r.School.Code, resultLine(r))
	}
	rs, err := New(opt).RunAll(ctx, ao)
	if err != nil && len(rs) == 0 {
		return err
	}
	if len(rs) == 0 {
		fmt.Fprintln(out, "no school has a directory source: elevid sync source set --all-schools …")
		return nil
	}
	printSummary(out, rs, time.Since(start))
	if err != nil {
		return err
	}
	var bad []string
	for _, r := range rs {
		if r.Err != nil {
			bad = append(bad, r.School.Code)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d of %d schools did not sync: %s (see the table above; elevid sync runs --school CODE)", len(bad), len(rs), strings.Join(bad, ", "))
	}
	return nil
}

func resultLine(r SchoolResult) string {
	run := r.Result.Run
	status := string(run.Status)
	if status == "" {
		status = "not run"
	}
	line := fmt.Sprintf("%-17s %7s  %6d entries  %s", status, r.Duration.Round(100*time.Millisecond), run.Entries, countsLine(run.Counts))
	if w := run.WarningTotal(); w > 0 {
		line += fmt.Sprintf("  %d warnings", w)
	}
	if r.Err != nil {
		line += "  error: " + r.Err.Error()
	}
	return line
}

func countsLine(c map[string]int) string {
	var parts []string
	for _, k := range []string{"pupil.create", "pupil.update", "pupil.class", "pupil.quarantine", "pupil.restore"} {
		if c[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", strings.TrimPrefix(k, "pupil."), c[k]))
		}
	}
	if len(parts) == 0 {
		return "no pupil changes"
	}
	return strings.Join(parts, ", ")
}

// printSummary prints one row per school and the totals.
func printSummary(out io.Writer, rs []SchoolResult, wall time.Duration) {
	fmt.Fprintf(out, "\n%-12s %-17s %8s %8s %8s %8s %8s %8s\n", "school", "status", "time", "entries", "created", "updated", "quarant.", "warnings")
	var tot SchoolResult
	tot.Result.Run.Counts = map[string]int{}
	statuses := map[school.SyncStatus]int{}
	for _, r := range rs {
		run := r.Result.Run
		c := run.Counts
		upd := c["pupil.update"] + c["pupil.class"] + c["pupil.guardians"] + c["pupil.restore"]
		status := string(run.Status)
		if r.Err != nil && errors.Is(r.Err, ErrBusy) {
			status = "busy elsewhere"
		} else if status == "" {
			status = "failed"
		}
		statuses[school.SyncStatus(status)]++
		fmt.Fprintf(out, "%-12s %-17s %8s %8d %8d %8d %8d %8d\n", r.School.Code, status, r.Duration.Round(100*time.Millisecond),
			run.Entries, c["pupil.create"], upd, c["pupil.quarantine"], run.WarningTotal())
		tot.Result.Run.Entries += run.Entries
		tot.Result.Run.Counts["create"] += c["pupil.create"]
		tot.Result.Run.Counts["update"] += upd
		tot.Result.Run.Counts["quarantine"] += c["pupil.quarantine"]
		tot.Result.Run.WarningsDropped += run.WarningTotal()
	}
	t := tot.Result.Run
	fmt.Fprintf(out, "%-12s %-17s %8s %8d %8d %8d %8d %8d\n", "total", fmt.Sprintf("%d schools", len(rs)), wall.Round(100*time.Millisecond),
		t.Entries, t.Counts["create"], t.Counts["update"], t.Counts["quarantine"], t.WarningsDropped)
	var keys []string
	for k := range statuses {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", statuses[school.SyncStatus(k)], k))
	}
	fmt.Fprintf(out, "%s\n", strings.Join(parts, ", "))
}

func schoolByCode(ctx context.Context, st school.Store, code string) (school.School, error) {
	if code == "" {
		return school.School{}, fmt.Errorf("--school is required\n%s", usage)
	}
	sch, err := st.SchoolByCode(ctx, code)
	if errors.Is(err, school.ErrNotFound) {
		return sch, fmt.Errorf("no school with code %q", code)
	}
	return sch, err
}

// progressPrinter shows progress on one line on a terminal, else a line
// every few pages.
type progressPrinter struct {
	out  io.Writer
	tty  bool
	last Progress
	any  bool
}

func newProgressPrinter(out io.Writer) *progressPrinter {
	p := &progressPrinter{out: out}
	if f, ok := out.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progressPrinter) print(pr Progress) {
	p.any = true
	line := fmt.Sprintf("%-9s %8d entries read, %5d pages", pr.Phase, pr.Entries, pr.Pages)
	switch {
	case p.tty:
		fmt.Fprintf(p.out, "\r%s", line)
	case pr.Phase != p.last.Phase || pr.Pages%20 == 0:
		fmt.Fprintln(p.out, line)
	}
	p.last = pr
}

func (p *progressPrinter) done() {
	if p.tty && p.any {
		fmt.Fprintln(p.out)
	}
}

func printRun(out io.Writer, r school.SyncRun, warnings bool) {
	dur := "running"
	if !r.EndedAt.IsZero() {
		dur = r.EndedAt.Sub(r.StartedAt).Round(time.Millisecond).String()
	}
	flags := string(r.Mode)
	if r.DryRun {
		flags += ", dry run"
	}
	if r.Forced {
		flags += ", forced"
	}
	fmt.Fprintf(out, "run %s  %s  %s (%s)  %s  %d entries, %d pages, %d warnings\n", r.ID, r.StartedAt.Local().Format("2006-01-02 15:04:05"),
		r.Status, flags, dur, r.Entries, r.Pages, r.WarningTotal())
	keys := make([]string, 0, len(r.Counts))
	for k := range r.Counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(out, "  %-18s %d\n", k, r.Counts[k])
	}
	if r.Error != "" {
		fmt.Fprintf(out, "  error: %s\n", r.Error)
	}
	printWarnings(out, r, warnings)
}

// printWarnings summarises r's warnings by kind, most frequent first:
// the count and the first DNs of each kind (all that were kept when all
// is set).
func printWarnings(out io.Writer, r school.SyncRun, all bool) {
	n := 3
	if all {
		n = school.MaxSyncWarningsPerKind
	}
	sums := r.WarningSummaries(n)
	if len(sums) == 0 {
		return
	}
	fmt.Fprintln(out, "  warnings by kind:")
	for _, s := range sums {
		fmt.Fprintf(out, "    %-18s %6d\n", s.Kind, s.Count)
		for _, dn := range s.DNs {
			fmt.Fprintf(out, "      %s\n", dn)
		}
		if s.More > 0 {
			fmt.Fprintf(out, "      … %d more\n", s.More)
		}
	}
	if all {
		for _, w := range r.Warnings {
			fmt.Fprintf(out, "  warning [%s] %s: %s\n", w.Kind, w.DN, w.Message)
		}
	} else {
		fmt.Fprintf(out, "  every warning's message: elevid sync runs --school CODE --run %s\n", r.ID)
	}
}

func printChanges(out io.Writer, cs []Change, limit int) {
	for i, c := range cs {
		if i == limit {
			fmt.Fprintf(out, "  … %d more changes\n", len(cs)-limit)
			break
		}
		ref := c.DN
		if ref == "" {
			ref = "id " + c.ID
		}
		extra := ""
		if len(c.Fields) > 0 {
			extra = " (" + strings.Join(c.Fields, ", ") + ")"
		}
		fmt.Fprintf(out, "  %-18s %s %s%s\n", c.Action, c.ExternalID, ref, extra)
	}
}

func runsCmd(ctx context.Context, opt Options, out io.Writer, args []string) error {
	st := opt.Store
	fs := flag.NewFlagSet("sync runs", flag.ContinueOnError)
	fs.SetOutput(out)
	code := fs.String("school", "", "school code")
	limit := fs.Int("limit", 20, "runs to list")
	id := fs.String("run", "", "show one run with all its warnings")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sch, err := schoolByCode(ctx, st, *code)
	if err != nil {
		return err
	}
	// A run left "running" by a killed process reads "interrupted" here
	// already, not only after the next run.
	if err := New(opt).Reap(ctx, sch.ID); err != nil {
		return err
	}
	if *id != "" {
		r, err := st.GetSyncRun(ctx, *id)
		if err != nil || r.SchoolID != sch.ID {
			return fmt.Errorf("no run %q for school %s", *id, sch.Code)
		}
		printRun(out, r, true)
		return nil
	}
	runs, err := st.ListSyncRuns(ctx, sch.ID, *limit)
	if err != nil {
		return err
	}
	if len(runs) == 0 {
		fmt.Fprintln(out, "no runs yet")
	}
	for _, r := range runs {
		printRun(out, r, false)
	}
	return nil
}

// attrFlags collects repeated --attr key=value flags.
