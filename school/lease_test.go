package school_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
)

// memLocks is a LockStore on the wall clock.
type memLocks struct {
	mu      sync.Mutex
	owner   map[string]string
	expires map[string]time.Time
	renewed int
}

func (m *memLocks) TryLock(_ context.Context, name, owner string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o, ok := m.owner[name]; ok && o != owner && time.Now().Before(m.expires[name]) {
		return school.ErrLocked
	} else if ok && o == owner {
		m.renewed++
	}
	m.owner[name], m.expires[name] = owner, time.Now().Add(ttl)
	return nil
}

func (m *memLocks) Unlock(_ context.Context, name, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.owner[name] == owner {
		delete(m.owner, name)
	}
	return nil
}

// A held lease outlives its TTL while the holder lives, and is free at
// once when released.
func TestHoldLockRenews(t *testing.T) {
	m := &memLocks{owner: map[string]string{}, expires: map[string]time.Time{}}
	ctx := context.Background()
	ttl := 90 * time.Millisecond
	release, err := school.HoldLock(ctx, m, "job", "a", ttl, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * ttl)
	if _, err := school.HoldLock(ctx, m, "job", "b", ttl, nil); !errors.Is(err, school.ErrLocked) {
		t.Fatalf("second owner after 3 TTLs: %v, want ErrLocked (the lease is renewed)", err)
	}
	m.mu.Lock()
	n := m.renewed
	m.mu.Unlock()
	if n < 5 {
		t.Fatalf("renewed %d times in 3 TTLs, want ≥ 5", n)
	}
	release()
	release() // safe twice
	r2, err := school.HoldLock(ctx, m, "job", "b", ttl, nil)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	r2()
}
