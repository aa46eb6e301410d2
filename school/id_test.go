package school_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
)

// TestNewLogID: 32 hex digits, the first 12 the time in milliseconds, so
// ids of later times sort after earlier ones; ids of one millisecond
// still differ (80 random bits).
func TestNewLogID(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	prev := ""
	seen := map[string]bool{}
	for i := range 1000 {
		at := t0.Add(time.Duration(i/10) * time.Millisecond)
		id := school.NewLogID(at)
		if len(id) != 32 {
			t.Fatalf("%q: %d characters", id, len(id))
		}
		ms, err := strconv.ParseInt(id[:12], 16, 64)
		if err != nil || ms != at.UnixMilli() {
			t.Fatalf("%q begins with %d, want %d (%v)", id, ms, at.UnixMilli(), err)
		}
		if i%10 == 0 && id <= prev {
			t.Fatalf("%q (at %v) does not sort after %q", id, at, prev)
		}
		if seen[id] {
			t.Fatalf("%q twice", id)
		}
		seen[id], prev = true, id
	}
}
