package access_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/access"
)

// TestDeliveryOutcomes runs the shared logout queue loop over a real
// store: a delivered notice leaves the queue, a failed one is due again
// after school.RetryDelay, an undeliverable one is never sent again (kept
// until it expires), and each protocol's Delivery takes only its own.
func TestDeliveryOutcomes(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind string) {
		w := newWorld(t, kind)
		ctx := context.Background()
		queue := func(pf school.Platform, subject string) school.LogoutNotice {
			return must[school.LogoutNotice](t)(w.st.QueueLogout(ctx, school.LogoutNotice{PlatformID: pf.ID, Protocol: pf.Protocol,
				Subject: subject, ExpiresAt: w.clock.Now().Add(24 * time.Hour)}))
		}
		ok, retry, refused := queue(w.oidcA, "ok"), queue(w.oidcA, "retry"), queue(w.oidcB, "refused")
		samlN := queue(w.samlSP, "saml")
		sent := map[string]int{}
		d := &access.Delivery{Protocol: school.ProtocolOIDC, Queue: w.st, Now: w.clock.Now, Logger: slog.New(slog.DiscardHandler),
			Send: func(_ context.Context, n school.LogoutNotice) (string, error) {
				sent[n.Subject]++
				switch n.Subject {
				case "retry":
					return n.PlatformID, errors.New("status 503")
				case "refused":
					return n.PlatformID, access.Undeliverable("the platform refused the logout token")
				}
				return n.PlatformID, nil
			}}
		if dl, f, err := d.Deliver(ctx, "node-a"); dl != 1 || f != 2 || err != nil {
			t.Fatalf("first round: delivered %d, failed %d, %v", dl, f, err)
		}
		left := map[string]school.LogoutNotice{}
		for _, n := range must[[]school.LogoutNotice](t)(w.st.ListLogouts(ctx)) {
			left[n.ID] = n
		}
		if _, there := left[ok.ID]; there || len(left) != 3 {
			t.Fatalf("after the first round the queue holds %+v", left)
		}
		if n := left[retry.ID]; n.LastError != "status 503" || !n.NextAt.Equal(w.clock.Now().Add(school.RetryDelay(1))) {
			t.Fatalf("failed notice: %+v", n)
		}
		if n := left[refused.ID]; n.LastError != "the platform refused the logout token" || !n.NextAt.Equal(refused.ExpiresAt) {
			t.Fatalf("refused notice: %+v", n)
		}
		if _, there := left[samlN.ID]; !there {
			t.Fatal("the OIDC delivery took the SAML notice")
		}
		// Nothing is due before the retry delay; after it, only the
		// retried notice is sent again.
		if dl, f, _ := d.Deliver(ctx, "node-a"); dl+f != 0 {
			t.Fatalf("a notice was sent before it was due: delivered %d, failed %d", dl, f)
		}
		w.clock.Advance(school.RetryDelay(1) + time.Second)
		if dl, f, _ := d.Deliver(ctx, "node-a"); dl != 0 || f != 1 || sent["retry"] != 2 || sent["refused"] != 1 || sent["saml"] != 0 {
			t.Fatalf("second round: delivered %d, failed %d, sent %v", dl, f, sent)
		}
	})
}

// claimSignal is a LogoutQueue that reports each claim, so that a test
// knows Run's first (empty) round is over.
type claimSignal struct {
	access.LogoutQueue
	claimed chan struct{}
}

func (c claimSignal) ClaimLogouts(ctx context.Context, owner string, p school.Protocol, lease time.Duration, limit int) ([]school.LogoutNotice, error) {
	defer func() {
		select {
		case c.claimed <- struct{}{}:
		default:
		}
	}()
	return c.LogoutQueue.ClaimLogouts(ctx, owner, p, lease, limit)
}

// TestDeliveryRunWakes checks that Run sends at once when woken, not only
// on its 15 s tick, and stops with its context.
func TestDeliveryRunWakes(t *testing.T) {
	w := newWorld(t, "sqlite")
	ctx, cancel := context.WithCancel(context.Background())
	wake := make(chan struct{}, 1)
	sent := make(chan string, 4)
	q := claimSignal{LogoutQueue: w.st, claimed: make(chan struct{}, 1)}
	d := &access.Delivery{Protocol: school.ProtocolOIDC, Queue: q, Wake: wake, Now: w.clock.Now, Logger: slog.New(slog.DiscardHandler),
		Send: func(_ context.Context, n school.LogoutNotice) (string, error) { sent <- n.Subject; return "", nil }}
	done := make(chan struct{})
	go func() { d.Run(ctx, "node-a"); close(done) }()
	<-q.claimed // the first round found the queue empty; Run now waits
	must[school.LogoutNotice](t)(w.st.QueueLogout(context.Background(), school.LogoutNotice{PlatformID: w.oidcA.ID, Subject: "woken",
		ExpiresAt: w.clock.Now().Add(time.Hour)}))
	wake <- struct{}{}
	select {
	case s := <-sent:
		if s != "woken" {
			t.Fatalf("sent %q", s)
		}
	case <-time.After(10 * time.Second): // below the 15 s tick: only the wake can have sent it
		t.Fatal("a wake did not start a round")
	}
	cancel()
	<-done
}
