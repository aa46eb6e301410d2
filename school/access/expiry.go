package access

import (
	"context"
	"errors"
	"time"

	"github.com/elevid/elevid/school"
)

// expiryLock is the lease that lets one node at a time end expired
// sessions.
const expiryLock = "session-expiry"

// EndExpired ends, through End, every pupil session that passed its idle
// or absolute timeout without being revoked, so that the platforms it
// signed in to get a logout notice; it returns how many it ended. One
// node at a time runs it (a lease in the store, owner names this node):
// school.ErrLocked when another node holds the lease.
func (s *Service) EndExpired(ctx context.Context, st school.Store, owner string) (int, error) {
	if err := st.TryLock(ctx, expiryLock, owner, 5*time.Minute); err != nil {
		return 0, err
	}
	defer st.Unlock(context.WithoutCancel(ctx), expiryLock, owner)
	total := 0
	for {
		list, err := st.ExpiredPupilSessions(ctx, s.opt.Now(), 100)
		if err != nil || len(list) == 0 {
			return total, err
		}
		ended := 0
		for _, ss := range list {
			e, err := s.EndIn(ctx, st, Session(ss.SubjectID, ss.Ref), "expired")
			if err != nil {
				return total, err
			}
			ended += e.Sessions // 0 when ended meanwhile by someone else
		}
		total += ended
		if ended == 0 {
			return total, nil // nothing moved: do not spin
		}
	}
}

// RunExpiry runs EndExpired every interval (a minute when zero) until ctx
// ends.
func (s *Service) RunExpiry(ctx context.Context, st school.Store, owner string, interval time.Duration) {
	if interval <= 0 {
		interval = time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.EndExpired(ctx, st, owner)
		switch {
		case errors.Is(err, school.ErrLocked):
		case err != nil && ctx.Err() == nil:
			s.opt.Logger.Error("session expiry", "err", err)
		case n > 0:
			s.opt.Logger.Info("expired sessions ended", "sessions", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
