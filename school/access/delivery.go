package access

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/elevid/elevid/school"
)

// Timing of the logout queue's delivery.
const (
	logoutLease = time.Minute      // how long a claimed notice is this node's
	logoutPoll  = 15 * time.Second // how often the queue is looked at unwoken
	logoutBatch = 10               // notices claimed at a time
)

// ErrUndeliverable is wrapped (see Undeliverable) by a Delivery's Send
// error when sending the notice again will not help (the platform refused
// it, or can no longer take one): the notice is kept, visible, until it
// expires, and never sent again.
var ErrUndeliverable = errors.New("the platform cannot take this logout notice")

// Undeliverable returns an error with text reason that wraps
// ErrUndeliverable, for a Send that must not be tried again.
func Undeliverable(reason string) error { return undeliverable(reason) }

type undeliverable string

func (u undeliverable) Error() string { return string(u) }
func (u undeliverable) Unwrap() error { return ErrUndeliverable }

// LogoutQueue is the part of school.Store a Delivery uses.
type LogoutQueue interface {
	ClaimLogouts(ctx context.Context, owner string, protocol school.Protocol, lease time.Duration, limit int) ([]school.LogoutNotice, error)
	LogoutDelivered(ctx context.Context, id, owner string) error
	LogoutFailed(ctx context.Context, id, owner, reason string, retryAt time.Time) error
}

// Delivery sends one protocol's logout notices from the durable queue
// (school.LogoutNotice, queued by End in the transaction that ended the
// access). The protocol packages (OIDC back-channel logout, SAML SOAP
// logout) each build one with their Send; the queue handling (claiming
// under a lease, recording success, retry with school.RetryDelay, giving
// up on ErrUndeliverable) is this one loop.
type Delivery struct {
	Protocol school.Protocol
	Queue    LogoutQueue
	// Send delivers notice n once. It returns the platform's name for the
	// log, and an error wrapping ErrUndeliverable when it must not be
	// tried again.
	Send func(ctx context.Context, n school.LogoutNotice) (platform string, err error)
	// Wake, when set, starts a round at once (Service.Subscribe).
	Wake   <-chan struct{}
	Now    func() time.Time // time.Now when nil
	Logger *slog.Logger     // slog.Default when nil
}

// Run delivers due notices until ctx ends: at once when woken (this node
// queued some), and every 15 s for those of other nodes and retries.
// Every node runs it; leases keep two nodes from sending one notice.
func (d *Delivery) Run(ctx context.Context, owner string) {
	t := time.NewTicker(logoutPoll)
	defer t.Stop()
	for {
		if _, _, err := d.Deliver(ctx, owner); err != nil && ctx.Err() == nil {
			d.log().Error("logout queue", "protocol", d.Protocol, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.Wake:
		}
	}
}

// Deliver claims the due notices of the protocol for owner and tries each
// once; it returns how many were delivered and how many failed, and the
// error of the queue itself (a failed notice is not an error).
func (d *Delivery) Deliver(ctx context.Context, owner string) (delivered, failed int, err error) {
	for {
		batch, err := d.Queue.ClaimLogouts(ctx, owner, d.Protocol, logoutLease, logoutBatch)
		if err != nil || len(batch) == 0 {
			return delivered, failed, err
		}
		for _, n := range batch {
			if d.deliverOne(ctx, owner, n) {
				delivered++
			} else {
				failed++
			}
		}
	}
}

// deliverOne sends n and records the outcome: delivered, or failed with
// the next attempt (school.RetryDelay), or never again (ErrUndeliverable).
// The outcome is recorded even when ctx ends meanwhile.
func (d *Delivery) deliverOne(ctx context.Context, owner string, n school.LogoutNotice) bool {
	log := d.log().With("protocol", d.Protocol, "notice", n.ID, "attempt", n.Attempts)
	platform, err := d.Send(ctx, n)
	if err == nil {
		if err := d.Queue.LogoutDelivered(context.WithoutCancel(ctx), n.ID, owner); err != nil {
			log.Error("queued logout delivered but not recorded", "err", err)
		} else {
			log.Info("queued logout delivered", "platform", platform)
		}
		return true
	}
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	next := now().Add(school.RetryDelay(n.Attempts))
	if errors.Is(err, ErrUndeliverable) {
		next = n.ExpiresAt // kept, visible, until pruned; never sent again
	}
	if rerr := d.Queue.LogoutFailed(context.WithoutCancel(ctx), n.ID, owner, err.Error(), next); rerr != nil {
		log.Error("queued logout failure not recorded", "err", rerr)
	}
	log.Warn("queued logout failed", "platform", platform, "err", err, "next_attempt", next, "gives_up_at", n.ExpiresAt)
	return false
}

func (d *Delivery) log() *slog.Logger {
	if d.Logger == nil {
		return slog.Default()
	}
	return d.Logger
}
