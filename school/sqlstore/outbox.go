package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/elevid/elevid/school"
)

const mailCols = `id, school_id, kind, recipient, subject, body_text, body_html, status, attempts, last_error, created_at, next_at, sent_at`

func scanMail(r Rows) (school.Mail, error) { return scanMailRow(r) }

func scanMailRow(r Row) (school.Mail, error) {
	var m school.Mail
	var attempts, created, next, sent int64
	err := r.Scan(&m.ID, &m.SchoolID, &m.Kind, &m.To, &m.Subject, &m.Text, &m.HTML, &m.Status, &attempts, &m.LastError, &created, &next, &sent)
	m.Attempts = int(attempts)
	m.CreatedAt, m.NextAt, m.SentAt = fromMicros(created), fromMicros(next), fromMicros(sent)
	return m, err
}

// EnqueueMail implements school.ConsentFlowStore.
func (s *Store) EnqueueMail(ctx context.Context, m school.Mail) (school.Mail, error) {
	if err := school.ValidEmail(m.To); err != nil {
		return m, err
	}
	if m.Kind == "" || strings.ContainsAny(m.Subject, "\r\n") || m.Text == "" {
		return m, fmt.Errorf("%w: incomplete mail", school.ErrInvalid)
	}
	m.ID = school.NewID()
	m.CreatedAt = s.now()
	m.NextAt = m.CreatedAt
	m.Status, m.Attempts, m.LastError, m.SentAt = school.MailPending, 0, "", time.Time{}
	err := s.tx(ctx, "enqueue mail", func(t *Store) error {
		_, err := t.q.Exec(ctx, `INSERT INTO outbox (`+mailCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, '', $9, $10, 0)`,
			m.ID, m.SchoolID, m.Kind, m.To, m.Subject, m.Text, m.HTML, m.Status, micros(m.CreatedAt), micros(m.NextAt))
		return err
	})
	return m, err
}

// ClaimMail implements school.ConsentFlowStore.
func (s *Store) ClaimMail(ctx context.Context, owner string, lease time.Duration, limit int) ([]school.Mail, error) {
	return claim(ctx, s, "claim mail", "outbox", "", "status = 'pending' AND next_at <= $1", mailCols, scanMail, owner, lease, limit)
}

// MailSent implements school.ConsentFlowStore.
func (s *Store) MailSent(ctx context.Context, id, owner string) error {
	return s.tx(ctx, "mail sent", func(t *Store) error {
		now := micros(t.now())
		n, err := t.q.Exec(ctx, `UPDATE outbox SET status = 'sent', sent_at = $3, body_text = '', body_html = '', last_error = '', lease_owner = '', lease_until = 0
			WHERE id = $1 AND lease_owner = $2 AND status = 'pending'`, id, owner, now)
		if err == nil && n == 0 {
			return fmt.Errorf("mail %s: lease lost: %w", id, school.ErrLocked)
		}
		return err
	})
}

// MailFailed implements school.ConsentFlowStore.
func (s *Store) MailFailed(ctx context.Context, id, owner, reason string, retryAt time.Time) error {
	if len(reason) > 500 {
		reason = reason[:500]
	}
	status := school.MailPending
	if retryAt.IsZero() {
		status = school.MailFailed
	}
	return s.tx(ctx, "mail failed", func(t *Store) error {
		n, err := t.q.Exec(ctx, `UPDATE outbox SET status = $3, last_error = $4, next_at = $5, lease_owner = '', lease_until = 0
			WHERE id = $1 AND lease_owner = $2 AND status = 'pending'`, id, owner, status, reason, micros(retryAt))
		if err == nil && n == 0 {
			return fmt.Errorf("mail %s: lease lost: %w", id, school.ErrLocked)
		}
		return err
	})
}

// RetryMail implements school.ConsentFlowStore.
func (s *Store) RetryMail(ctx context.Context, id string) error {
	return s.tx(ctx, "retry mail", func(t *Store) error {
		n, err := t.q.Exec(ctx, `UPDATE outbox SET status = 'pending', next_at = $2, attempts = 0 WHERE id = $1 AND status = 'failed'`, id, micros(t.now()))
		if err == nil && n == 0 {
			return fmt.Errorf("failed mail: %w", school.ErrNotFound)
		}
		return err
	})
}

// ListMail implements school.ConsentFlowStore.
func (s *Store) ListMail(ctx context.Context, f school.MailFilter) ([]school.Mail, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	cols := `id, school_id, kind, recipient, subject, '', '', status, attempts, last_error, created_at, next_at, sent_at`
	if f.Bodies {
		cols = mailCols // scanMail is the one place bodies are read
	}
	q := `SELECT ` + cols + ` FROM outbox WHERE ($1 = '' OR school_id = $1) AND ($2 = '' OR status = $2) ORDER BY created_at DESC, id LIMIT ` + fmt.Sprint(f.Limit)
	out, err := collect(ctx, s.q, scanMail, q, f.SchoolID, f.Status)
	return out, s.fail("list mail", err)
}

// GetMail implements school.ConsentFlowStore.
func (s *Store) GetMail(ctx context.Context, id string) (school.Mail, error) {
	m, err := scanMailRow(s.q.QueryRow(ctx, `SELECT `+mailCols+` FROM outbox WHERE id = $1`, id))
	if err != nil {
		return m, s.fail("get mail", one(err, "mail"))
	}
	return m, nil
}
