package transparency

import (
	"testing"
	"time"
)

// TestNextBatch: a purge batch that held the database over twice the
// target is halved, one under half of it doubled up to the configured
// size, and a batch never goes below one record.
func TestNextBatch(t *testing.T) {
	for _, c := range []struct {
		size int
		took time.Duration
		max  int
		want int
	}{
		{500, 200 * time.Millisecond, 500, 250},
		{250, 45 * time.Millisecond, 500, 125},
		{125, 20 * time.Millisecond, 500, 125},
		{125, 5 * time.Millisecond, 500, 250},
		{400, time.Millisecond, 500, 500},
		{500, time.Millisecond, 500, 500},
		{1, time.Second, 500, 1},
	} {
		if got := nextBatch(c.size, c.took, c.max); got != c.want {
			t.Errorf("nextBatch(%d, %v, %d) = %d, want %d", c.size, c.took, c.max, got, c.want)
		}
	}
}
