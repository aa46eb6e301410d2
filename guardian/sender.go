package guardian

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"strconv"
	"time"

	"github.com/elevid/elevid/school"
)

// SMTP is the outgoing mail server (config `smtp.*`).
type SMTP struct {
	Host string
	Port int
	// TLS is "starttls" (required, never downgraded), "implicit" (TLS from
	// the first byte, port 465) or "none" (loopback relays only).
	TLS      string
	Username string
	Password string
	From     string
	// TLSConfig overrides the TLS client settings (tests add their CA);
	// ServerName defaults to Host.
	TLSConfig *tls.Config
	// Timeout bounds one delivery; 30 s when zero.
	Timeout time.Duration
}

// Send delivers msg from the configured From address to one recipient.
func (c SMTP) Send(ctx context.Context, to string, msg []byte) error {
	if c.Host == "" {
		return errors.New("smtp: no host configured")
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tc := &tls.Config{ServerName: c.Host, MinVersion: tls.VersionTLS12}
	if c.TLSConfig != nil {
		tc = c.TLSConfig.Clone()
		if tc.ServerName == "" {
			tc.ServerName = c.Host
		}
	}
	addr := net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
	d := &net.Dialer{}
	var conn net.Conn
	var err error
	if c.TLS == "implicit" {
		conn, err = (&tls.Dialer{NetDialer: d, Config: tc}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return err
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	cl, err := smtp.NewClient(conn, c.Host)
	if err != nil {
		conn.Close()
		return err
	}
	defer cl.Close()
	hostname, _ := os.Hostname()
	if hostname == "" {
		hostname = "localhost"
	}
	if err := cl.Hello(hostname); err != nil {
		return err
	}
	if c.TLS == "starttls" {
		if ok, _ := cl.Extension("STARTTLS"); !ok {
			return errors.New("smtp: server does not offer STARTTLS")
		}
		if err := cl.StartTLS(tc); err != nil {
			return err
		}
	}
	if c.Username != "" {
		// PlainAuth itself refuses to send the password without TLS except
		// to localhost.
		if err := cl.Auth(smtp.PlainAuth("", c.Username, c.Password, c.Host)); err != nil {
			return err
		}
	}
	if err := cl.Mail(c.From); err != nil {
		return err
	}
	if err := cl.Rcpt(to); err != nil {
		return err
	}
	w, err := cl.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return cl.Quit()
}

// Permanent reports whether err is a permanent SMTP refusal (5xx), which
// retrying will not cure.
func Permanent(err error) bool {
	var te *textproto.Error
	var pe permanentError
	return errors.As(err, &te) && te.Code >= 500 || errors.As(err, &pe)
}

// permanentError marks an error that retrying will not cure.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func permanent(err error) error { return permanentError{err} }

// SenderOptions configure a Sender.
type SenderOptions struct {
	Store school.Store
	// Sealer opens the sealed mail bodies (SealMail); required.
	Sealer *school.Sealer
	SMTP   SMTP
	// Owner names this node in leases; random when empty.
	Owner string
	// Lease is how long a claimed message is this node's; 5 min when zero.
	// It must exceed SMTP.Timeout, or a slow send may be sent twice.
	Lease time.Duration
	// Interval between outbox polls; 5 s when zero.
	Interval time.Duration
	// MaxAttempts before a message is marked failed; 12 when zero.
	MaxAttempts int
	// Backoff is the delay before attempt n+1 after n failed attempts;
	// 30 s doubling up to 1 h, with jitter, when nil.
	Backoff func(attempts int) time.Duration
	Now     func() time.Time
	Logger  *slog.Logger
}

// Sender delivers the outbox. Several nodes may run one each: a message
// is leased by one node at a time, so each is delivered once (a node that
// dies after the server accepted a message but before recording it can
// cause one duplicate after the lease ends; SMTP gives no better).
type Sender struct {
	opt  SenderOptions
	wake chan struct{}
}

// NewSender returns a Sender for opt.
func NewSender(opt SenderOptions) *Sender {
	if opt.Sealer == nil {
		panic("guardian: NewSender needs a Sealer") // a wiring error
	}
	if opt.Owner == "" {
		opt.Owner = "sender-" + randomHex(8)
	}
	if opt.Lease <= 0 {
		opt.Lease = 5 * time.Minute
	}
	if opt.Interval <= 0 {
		opt.Interval = 5 * time.Second
	}
	if opt.MaxAttempts <= 0 {
		opt.MaxAttempts = 12
	}
	if opt.Backoff == nil {
		opt.Backoff = DefaultBackoff
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	return &Sender{opt: opt, wake: make(chan struct{}, 1)}
}

// DefaultBackoff is 30 s × 2^(attempts-1), at most 1 h, ±20 % jitter.
func DefaultBackoff(attempts int) time.Duration {
	d := school.RetryDelay(attempts)
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

// Wake makes Run poll now (after a mail was enqueued on this node).
func (s *Sender) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run delivers the outbox until ctx ends.
func (s *Sender) Run(ctx context.Context) {
	t := time.NewTicker(s.opt.Interval)
	defer t.Stop()
	for {
		if _, _, err := s.RunOnce(ctx); err != nil && ctx.Err() == nil {
			s.opt.Logger.Error("mail outbox", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
	}
}

// RunOnce claims the due messages and tries each once; it returns how
// many were sent and how many failed (to be retried or given up).
func (s *Sender) RunOnce(ctx context.Context) (sent, failed int, err error) {
	if s.opt.SMTP.Host == "" {
		return 0, 0, nil // mail stays in the outbox, visible
	}
	for {
		batch, err := s.opt.Store.ClaimMail(ctx, s.opt.Owner, s.opt.Lease, 10)
		if err != nil || len(batch) == 0 {
			return sent, failed, err
		}
		for _, m := range batch {
			if s.deliver(ctx, m) {
				sent++
			} else {
				failed++
			}
		}
		if failed > 0 {
			return sent, failed, nil // the server is struggling: wait for the next round
		}
	}
}

func (s *Sender) deliver(ctx context.Context, m school.Mail) bool {
	log := s.opt.Logger.With("mail", m.ID, "kind", m.Kind, "attempt", m.Attempts)
	m, err := OpenMail(s.opt.Sealer, m)
	var msg []byte
	if err != nil {
		err = permanent(err) // no key opens it: retrying cannot help
	} else {
		msg, err = Compose(s.opt.SMTP.From, m, s.opt.Now())
	}
	if err == nil {
		err = s.opt.SMTP.Send(ctx, m.To, msg)
	}
	if err == nil {
		if err := s.opt.Store.MailSent(context.WithoutCancel(ctx), m.ID, s.opt.Owner); err != nil {
			log.Error("mail sent but not recorded", "err", err)
		} else {
			log.Info("mail sent")
		}
		return true
	}
	retry := time.Time{}
	if !Permanent(err) && m.Attempts < s.opt.MaxAttempts {
		retry = s.opt.Now().Add(s.opt.Backoff(m.Attempts))
	}
	reason := err.Error()
	if rerr := s.opt.Store.MailFailed(context.WithoutCancel(ctx), m.ID, s.opt.Owner, reason, retry); rerr != nil {
		log.Error("mail failure not recorded", "err", rerr)
	}
	if retry.IsZero() {
		log.Error("mail failed for good", "err", err)
	} else {
		log.Warn("mail failed, will retry", "err", err, "retry_at", retry)
	}
	return false
}

// String describes the configuration without the password.
func (c SMTP) String() string {
	return fmt.Sprintf("smtp://%s:%d (tls=%s, auth=%t)", c.Host, c.Port, c.TLS, c.Username != "")
}
