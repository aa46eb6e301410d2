package console

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pquerna/otp"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/school"
)

// SealTOTP seals a base32 TOTP secret for storing in Staff.TOTPSecret.
func SealTOTP(s *school.Sealer, staffID, secret string) []byte {
	return s.Seal([]byte(secret), sealTOTPContext(staffID))
}

// Credentials are what SetCredentials gives a staff member.
type Credentials struct {
	Password string // empty: keep the password
	// OneTime marks Password as a one-time password (changed at the first
	// sign-in, refused after OneTimePasswordLifetime).
	OneTime bool
	TOTP    *otp.Key // nil: keep the TOTP secret
	// RecoveryCodes are set when fresh ones were made.
	RecoveryCodes []string
}

// SetCredentials sets a staff member's password and/or TOTP secret (with
// fresh recovery codes when the secret changes), clears any lockout and
// writes an audit entry for actor. It is what the CLI and the demo use.
func SetCredentials(ctx context.Context, st school.Store, sealer *school.Sealer, params Argon2Params, staffID, actor string, cr *Credentials) error {
	if params.Memory == 0 {
		params = DefaultArgon2
	}
	var hash string
	if cr.Password != "" {
		hash = HashPassword(cr.Password, params)
	}
	var codes []string
	var hashes [][]byte
	if cr.TOTP != nil {
		codes, hashes = newRecoveryCodes(sealer)
	}
	return st.InTx(ctx, func(q school.Queries) error {
		staff, err := q.UpdateStaff(ctx, staffID, func(s school.Staff) (school.Staff, error) {
			if hash != "" {
				s.PasswordHash, s.PasswordExpires = hash, time.Time{}
				if cr.OneTime {
					s.PasswordExpires = time.Now().Add(OneTimePasswordLifetime)
				}
			}
			if cr.TOTP != nil {
				s.TOTPSecret = SealTOTP(sealer, s.ID, cr.TOTP.Secret())
			}
			return s, nil
		})
		if err != nil {
			return err
		}
		if _, err := q.UpdateStaffAuth(ctx, staffID, func(a school.StaffAuth) (school.StaffAuth, error) {
			a.Failures, a.LockedUntil = 0, time.Time{}
			if cr.TOTP != nil {
				a.PendingTOTP, a.TOTPLastStep, a.RecoveryHashes = nil, 0, hashes
			}
			return a, nil
		}); err != nil {
			return err
		}
		cr.RecoveryCodes = codes
		_, err = q.AppendAudit(ctx, school.AuditEntry{SchoolID: staff.SchoolID, ActorID: actor, ActorRole: string(school.RoleOperator),
			Action: "staff.credentials_set", SubjectID: staffID, Detail: fmt.Sprintf(`{"password":%t,"totp":%t}`, hash != "", cr.TOTP != nil)})
		return err
	})
}

// CreateOperator creates an operator account with password (a random
// one-time password when empty) and a fresh TOTP secret, and returns the
// password and the TOTP key (whose URL() is the otpauth:// URL).
func CreateOperator(ctx context.Context, st school.Store, sealer *school.Sealer, username, name, password string) (string, *Credentials, error) {
	username = normUsername(username)
	if !usernameOK(username) {
		return "", nil, fmt.Errorf("username %q: use 2–64 lower-case letters, digits and . - _ @", username)
	}
	oneTime := password == ""
	if oneTime {
		password = NewPassword()
	} else if len([]rune(password)) < MinPasswordLength {
		return "", nil, fmt.Errorf("the password needs at least %d characters", MinPasswordLength)
	}
	key, err := NewTOTPKey(username)
	if err != nil {
		return "", nil, err
	}
	var staff school.Staff
	err = st.InTx(ctx, func(q school.Queries) error {
		var err error
		staff, err = q.CreateStaff(ctx, school.Staff{Username: username, Name: name, Role: school.RoleOperator})
		if err != nil {
			return err
		}
		_, err = q.AppendAudit(ctx, school.AuditEntry{SchoolID: school.InstanceChain, ActorID: "cli", ActorRole: string(school.RoleOperator),
			Action: "staff.create_operator", SubjectID: staff.ID})
		return err
	})
	if errors.Is(err, school.ErrConflict) {
		return "", nil, fmt.Errorf("the username %q is taken", username)
	}
	if err != nil {
		return "", nil, err
	}
	cr := &Credentials{Password: password, TOTP: key, OneTime: oneTime}
	if err := SetCredentials(ctx, st, sealer, DefaultArgon2, staff.ID, "cli", cr); err != nil {
		return "", nil, err
	}
	return password, cr, nil
}

// OneTimePasswordLifetime is how long an invite or reset password signs
// in; it must be changed at the first sign-in.
const OneTimePasswordLifetime = 7 * 24 * time.Hour

// InviteStaff creates a teacher or school admin of schoolID with a random
// one-time password, returned for handing over; TOTP is set up at the
// first sign-in.
func InviteStaff(ctx context.Context, st school.Store, inv Invite) (school.Staff, string, error) {
	inv.Username = normUsername(inv.Username)
	if errs := validateInvite(inv); len(errs) > 0 {
		var probs []string
		for k := range errs {
			probs = append(probs, k)
		}
		return school.Staff{}, "", fmt.Errorf("%w: check %s", school.ErrInvalid, strings.Join(probs, ", "))
	}
	password := inv.Password
	if password == "" {
		password = NewPassword()
	}
	s := school.Staff{SchoolID: inv.SchoolID, Username: inv.Username, Name: inv.Name, Email: inv.Email, Role: inv.Role,
		ClassIDs: inv.ClassIDs, PasswordHash: HashPassword(password, DefaultArgon2), PasswordExpires: time.Now().Add(OneTimePasswordLifetime)}
	actor := inv.ActorID
	if actor == "" {
		actor = "cli"
	}
	err := st.InTx(ctx, func(q school.Queries) error {
		var err error
		if s, err = q.CreateStaff(ctx, s); err != nil {
			return err
		}
		_, err = q.AppendAudit(ctx, school.AuditEntry{SchoolID: inv.SchoolID, ActorID: actor, ActorRole: string(school.RoleOperator),
			Action: "staff.invite", SubjectID: s.ID, Detail: fmt.Sprintf(`{"role":%q,"classes":%d}`, s.Role, len(s.ClassIDs))})
		return err
	})
	return s, password, err
}

// SheetCodes issues enrolment codes for every active pupil of a class
// who has consent and no passkey yet, as the console's "start enrolment"
// does, and returns the cards plus the names left out and why.
func SheetCodes(ctx context.Context, st school.Store, enr Enroller, issuer, schoolID, classID string, actor enrolment.Actor, replace bool) (SheetResult, error) {
	var out SheetResult
	cl, err := st.GetClass(ctx, schoolID, classID)
	if err != nil {
		return out, err
	}
	c := &Console{opt: Options{Store: st}}
	rows, err := c.pupilRows(ctx, schoolID, classID)
	if err != nil {
		return out, err
	}
	for _, row := range rows {
		switch {
		case row.Status != school.PupilActive:
		case row.Passkeys > 0:
			out.Enrolled = append(out.Enrolled, row.Name())
		case row.State == StateDeclined:
			out.Declined = append(out.Declined, row.Name())
		case !row.Consent:
			out.Waiting = append(out.Waiting, row.Name())
		case row.PendingCode && !replace:
			// A code handed out earlier still works: keep it.
			out.Outstanding = append(out.Outstanding, row.Name())
		default:
			code, exp, err := enr.IssueCode(ctx, actor, row.ID)
			if errors.Is(err, school.ErrInvalid) {
				out.Waiting = append(out.Waiting, row.Name())
				continue
			}
			if err != nil {
				return out, err
			}
			if row.PendingCode {
				out.Replaced = append(out.Replaced, row.Name())
			}
			out.Cards = append(out.Cards, Card{Name: row.Name(), Class: cl.Name, Code: code, Expires: exp, URL: enrolment.EnrolURL(issuer, code)})
		}
	}
	return out, nil
}

// SheetResult is what printing a class sheet found and issued.
type SheetResult struct {
	Cards    []Card
	Waiting  []string // no consent yet: no code
	Declined []string // a guardian said no: no code (the "no" stands)
	Enrolled []string // a passkey already: no code
	// Outstanding pupils have an unused code from an earlier sheet, which
	// stays valid (no new card); Replaced pupils had one and got a new
	// card because the teacher chose to replace codes (the old one no
	// longer works).
	Outstanding []string
	Replaced    []string
}

// ResetStaff resets a staff member's credentials after a lost device or
// password, in one transaction: a new one-time password (returned, not
// stored), the TOTP secret cleared (set up again at the next sign-in),
// every staff passkey deleted (so none of them signs in any more), the
// account unlocked and enabled, every session ended, and an audit entry
// for actor (with actorRole). school.ErrNotFound for an unknown staff
// member.
func ResetStaff(ctx context.Context, st school.Store, params Argon2Params, staffID, actor string, actorRole school.Role) (string, error) {
	if params.Memory == 0 {
		params = DefaultArgon2
	}
	pw := NewPassword()
	hash := HashPassword(pw, params)
	err := st.InTx(ctx, func(q school.Queries) error {
		staff, err := q.UpdateStaff(ctx, staffID, func(s school.Staff) (school.Staff, error) {
			s.PasswordHash, s.TOTPSecret, s.Disabled = hash, nil, false
			s.PasswordExpires = time.Now().Add(OneTimePasswordLifetime)
			return s, nil
		})
		if err != nil {
			return err
		}
		if _, err := q.UpdateStaffAuth(ctx, staffID, func(a school.StaffAuth) (school.StaffAuth, error) {
			a.Failures, a.LockedUntil = 0, time.Time{}
			a.PendingTOTP, a.TOTPLastStep, a.RecoveryHashes = nil, 0, nil
			return a, nil
		}); err != nil {
			return err
		}
		creds, err := q.ListCredentials(ctx, school.StaffOwner(staffID), true)
		if err != nil {
			return err
		}
		for _, c := range creds {
			if err := q.DeleteCredential(ctx, school.StaffOwner(staffID), c.ID); err != nil {
				return err
			}
		}
		if _, err := q.RevokeSessions(ctx, staffID, "credentials reset"); err != nil {
			return err
		}
		_, err = q.AppendAudit(ctx, school.AuditEntry{SchoolID: staff.SchoolID, ActorID: actor, ActorRole: string(actorRole),
			Action: "staff.reset", SubjectID: staffID, Detail: fmt.Sprintf(`{"passkeys_deleted":%d}`, len(creds))})
		return err
	})
	if err != nil {
		return "", err
	}
	return pw, nil
}
