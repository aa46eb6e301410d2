package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/elevid/elevid/school"
)

const sourceCols = `school_id, url, start_tls, ca_pem, bind_dn, bind_password, pupil_base, pupil_filter, staff_base, staff_filter,
	class_base, class_filter, guardian_base, guardian_filter, page_size, preset, attributes, interval_s, full_interval_s, grace_s,
	max_delete_percent, max_deletions, last_full_run, last_incremental_run, updated_at, school_attr, insecure`

func scanSource(r Rows) (school.DirectorySource, error) { return scanSourceRow(r) }

func scanSourceRow(r Row) (school.DirectorySource, error) {
	var s school.DirectorySource
	var attrs string
	var interval, full, grace, lastFull, lastIncr, updated int64
	err := r.Scan(&s.SchoolID, &s.URL, &s.StartTLS, &s.CAPEM, &s.BindDN, &s.BindPassword, &s.PupilBase, &s.PupilFilter,
		&s.StaffBase, &s.StaffFilter, &s.ClassBase, &s.ClassFilter, &s.GuardianBase, &s.GuardianFilter, &s.PageSize, &s.Preset,
		&attrs, &interval, &full, &grace, &s.MaxDeletePercent, &s.MaxDeletions, &lastFull, &lastIncr, &updated, &s.SchoolAttr, &s.Insecure)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal([]byte(attrs), &s.Attributes); err != nil {
		return s, fmt.Errorf("directory source %s: attributes: %w", s.SchoolID, err)
	}
	s.Interval, s.FullInterval, s.Grace = time.Duration(interval)*time.Second, time.Duration(full)*time.Second, time.Duration(grace)*time.Second
	s.LastFullRun, s.LastIncrementalRun, s.UpdatedAt = fromMicros(lastFull), fromMicros(lastIncr), fromMicros(updated)
	return s, nil
}

// GetDirectorySource implements school.DirectoryStore.
func (s *Store) GetDirectorySource(ctx context.Context, schoolID string) (school.DirectorySource, error) {
	src, err := scanSourceRow(s.q.QueryRow(ctx, `SELECT `+sourceCols+` FROM directory_sources WHERE school_id = $1`, schoolID))
	return src, s.fail("get directory source", one(err, "directory source"))
}

// ListDirectorySources implements school.DirectoryStore.
func (s *Store) ListDirectorySources(ctx context.Context) ([]school.DirectorySource, error) {
	out, err := collect(ctx, s.q, scanSource, `SELECT `+sourceCols+` FROM directory_sources ORDER BY school_id`)
	return out, s.fail("list directory sources", err)
}

// PutDirectorySource implements school.DirectoryStore.
func (s *Store) PutDirectorySource(ctx context.Context, src school.DirectorySource) (school.DirectorySource, error) {
	if err := src.Validate(); err != nil {
		return src, err
	}
	if src.Attributes == nil {
		src.Attributes = map[string]string{}
	}
	attrs, err := json.Marshal(src.Attributes)
	if err != nil {
		return src, err
	}
	src.UpdatedAt = s.now()
	src.LastFullRun = src.LastFullRun.UTC().Truncate(time.Microsecond)
	src.LastIncrementalRun = src.LastIncrementalRun.UTC().Truncate(time.Microsecond)
	err = s.tx(ctx, "put directory source", func(t *Store) error {
		_, err := t.q.Exec(ctx, `INSERT INTO directory_sources (`+sourceCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)
			ON CONFLICT (school_id) DO UPDATE SET url = excluded.url, start_tls = excluded.start_tls, ca_pem = excluded.ca_pem,
			bind_dn = excluded.bind_dn, bind_password = excluded.bind_password, pupil_base = excluded.pupil_base,
			pupil_filter = excluded.pupil_filter, staff_base = excluded.staff_base, staff_filter = excluded.staff_filter,
			class_base = excluded.class_base, class_filter = excluded.class_filter, guardian_base = excluded.guardian_base,
			guardian_filter = excluded.guardian_filter, page_size = excluded.page_size, preset = excluded.preset,
			attributes = excluded.attributes, interval_s = excluded.interval_s, full_interval_s = excluded.full_interval_s,
			grace_s = excluded.grace_s, max_delete_percent = excluded.max_delete_percent, max_deletions = excluded.max_deletions,
			last_full_run = excluded.last_full_run, last_incremental_run = excluded.last_incremental_run, updated_at = excluded.updated_at,
			school_attr = excluded.school_attr, insecure = excluded.insecure`,
			src.SchoolID, src.URL, src.StartTLS, src.CAPEM, src.BindDN, src.BindPassword, src.PupilBase, src.PupilFilter,
			src.StaffBase, src.StaffFilter, src.ClassBase, src.ClassFilter, src.GuardianBase, src.GuardianFilter, src.PageSize, src.Preset,
			string(attrs), int64(src.Interval/time.Second), int64(src.FullInterval/time.Second), int64(src.Grace/time.Second),
			src.MaxDeletePercent, src.MaxDeletions, micros(src.LastFullRun), micros(src.LastIncrementalRun), micros(src.UpdatedAt), src.SchoolAttr, src.Insecure)
		return err
	})
	return src, err
}

// MarkDirectoryRun implements school.DirectoryStore.
func (s *Store) MarkDirectoryRun(ctx context.Context, schoolID string, mode school.SyncMode, startedAt time.Time) error {
	col := "last_full_run"
	switch mode {
	case school.SyncFull:
	case school.SyncIncremental:
		col = "last_incremental_run"
	default:
		return fmt.Errorf("%w: sync mode %q", school.ErrInvalid, mode)
	}
	return s.tx(ctx, "mark directory run", func(t *Store) error {
		n, err := t.q.Exec(ctx, `UPDATE directory_sources SET `+col+` = $2 WHERE school_id = $1`, schoolID, micros(startedAt))
		if err == nil && n == 0 {
			return fmt.Errorf("directory source: %w", school.ErrNotFound)
		}
		return err
	})
}

const runCols = `id, school_id, started_at, ended_at, mode, dry_run, forced, status, counts, entries, pages, warnings, warnings_dropped, error, warning_counts`

func scanRun(r Rows) (school.SyncRun, error) { return scanRunRow(r) }

func scanRunRow(r Row) (school.SyncRun, error) {
	var run school.SyncRun
	var started, ended int64
	var mode, status, counts, warnings, wcounts string
	err := r.Scan(&run.ID, &run.SchoolID, &started, &ended, &mode, &run.DryRun, &run.Forced, &status, &counts,
		&run.Entries, &run.Pages, &warnings, &run.WarningsDropped, &run.Error, &wcounts)
	if err != nil {
		return run, err
	}
	run.StartedAt, run.EndedAt = fromMicros(started), fromMicros(ended)
	run.Mode, run.Status = school.SyncMode(mode), school.SyncStatus(status)
	if err := json.Unmarshal([]byte(counts), &run.Counts); err != nil {
		return run, fmt.Errorf("sync run %s: counts: %w", run.ID, err)
	}
	if err := json.Unmarshal([]byte(warnings), &run.Warnings); err != nil {
		return run, fmt.Errorf("sync run %s: warnings: %w", run.ID, err)
	}
	if err := json.Unmarshal([]byte(wcounts), &run.WarningCounts); err != nil {
		return run, fmt.Errorf("sync run %s: warning counts: %w", run.ID, err)
	}
	return run, nil
}

func runJSON(r school.SyncRun) (counts, warnings, wcounts string, err error) {
	if r.Counts == nil {
		r.Counts = map[string]int{}
	}
	if r.WarningCounts == nil {
		r.WarningCounts = map[string]int{}
	}
	wc, err := json.Marshal(r.WarningCounts)
	if err != nil {
		return "", "", "", err
	}
	if r.Warnings == nil {
		r.Warnings = []school.SyncWarning{}
	}
	c, err := json.Marshal(r.Counts)
	if err != nil {
		return "", "", "", err
	}
	w, err := json.Marshal(r.Warnings)
	return string(c), string(w), string(wc), err
}

func validRun(r school.SyncRun) error {
	switch {
	case r.SchoolID == "":
		return fmt.Errorf("%w: sync run has no school", school.ErrInvalid)
	case r.Mode != school.SyncFull && r.Mode != school.SyncIncremental:
		return fmt.Errorf("%w: sync mode %q", school.ErrInvalid, r.Mode)
	}
	switch r.Status {
	case school.SyncRunning, school.SyncSucceeded, school.SyncFailed, school.SyncAbortedThreshold, school.SyncInterrupted:
		return nil
	}
	return fmt.Errorf("%w: sync status %q", school.ErrInvalid, r.Status)
}

// CreateSyncRun implements school.DirectoryStore.
func (s *Store) CreateSyncRun(ctx context.Context, r school.SyncRun) (school.SyncRun, error) {
	if r.Status == "" {
		r.Status = school.SyncRunning
	}
	if err := validRun(r); err != nil {
		return r, err
	}
	r.ID = school.NewID()
	if r.StartedAt.IsZero() {
		r.StartedAt = s.now()
	}
	r.StartedAt = r.StartedAt.UTC().Truncate(time.Microsecond)
	counts, warnings, wcounts, err := runJSON(r)
	if err != nil {
		return r, err
	}
	err = s.tx(ctx, "create sync run", func(t *Store) error {
		_, err := t.q.Exec(ctx, `INSERT INTO sync_runs (`+runCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
			r.ID, r.SchoolID, micros(r.StartedAt), micros(r.EndedAt), string(r.Mode), r.DryRun, r.Forced, string(r.Status),
			counts, r.Entries, r.Pages, warnings, r.WarningsDropped, r.Error, wcounts)
		return err
	})
	return r, err
}

// FinishSyncRun implements school.DirectoryStore.
func (s *Store) FinishSyncRun(ctx context.Context, r school.SyncRun) (school.SyncRun, error) {
	if err := validRun(r); err != nil {
		return r, err
	}
	if r.EndedAt.IsZero() {
		r.EndedAt = s.now()
	}
	r.EndedAt = r.EndedAt.UTC().Truncate(time.Microsecond)
	counts, warnings, wcounts, err := runJSON(r)
	if err != nil {
		return r, err
	}
	err = s.tx(ctx, "finish sync run", func(t *Store) error {
		n, err := t.q.Exec(ctx, `UPDATE sync_runs SET ended_at = $2, status = $3, counts = $4, entries = $5, pages = $6,
			warnings = $7, warnings_dropped = $8, error = $9, forced = $10, dry_run = $11, warning_counts = $13 WHERE id = $1 AND school_id = $12`,
			r.ID, micros(r.EndedAt), string(r.Status), counts, r.Entries, r.Pages, warnings, r.WarningsDropped, r.Error, r.Forced, r.DryRun, r.SchoolID, wcounts)
		if err == nil && n == 0 {
			return fmt.Errorf("sync run: %w", school.ErrNotFound)
		}
		return err
	})
	return r, err
}

// GetSyncRun implements school.DirectoryStore.
func (s *Store) GetSyncRun(ctx context.Context, id string) (school.SyncRun, error) {
	r, err := scanRunRow(s.q.QueryRow(ctx, `SELECT `+runCols+` FROM sync_runs WHERE id = $1`, id))
	return r, s.fail("get sync run", one(err, "sync run"))
}

// InterruptSyncRuns implements school.DirectoryStore.
func (s *Store) InterruptSyncRuns(ctx context.Context, schoolID string, at time.Time) (int, error) {
	var n int64
	err := s.tx(ctx, "interrupt sync runs", func(t *Store) error {
		var err error
		n, err = t.q.Exec(ctx, `UPDATE sync_runs SET status = $2, ended_at = $3,
			error = 'interrupted: the process running it stopped before it recorded an outcome'
			WHERE school_id = $1 AND status = $4`, schoolID, string(school.SyncInterrupted), micros(at.UTC().Truncate(time.Microsecond)), string(school.SyncRunning))
		return err
	})
	return int(n), err
}

// ListSyncRuns implements school.DirectoryStore.
func (s *Store) ListSyncRuns(ctx context.Context, schoolID string, limit int) ([]school.SyncRun, error) {
	if limit <= 0 {
		limit = 50
	}
	out, err := collect(ctx, s.q, scanRun, `SELECT `+runCols+` FROM sync_runs WHERE school_id = $1 ORDER BY started_at DESC, id DESC LIMIT $2`, schoolID, limit)
	return out, s.fail("list sync runs", err)
}

// bulkParams bounds the parameters of one multi-row INSERT: SQLite looks
// $n parameters up linearly while preparing, so much larger statements
// cost more than they save.
const bulkParams = 500
