package bench

import (
	"context"
	crand "crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/sqlstore"
)

// Size is the filler of the size test: rows that sit in the database
// beside the fixture's pupils, shaped as the real flows leave them.
type Size struct {
	// Pupils enrolled, consented pupils with a passkey (which is never
	// used), each in a class of 25 with two guardians; the first 2,000
	// are in the bench school, the rest in schools of 2,000 of their own.
	Pupils int
	// Releases are release-log rows of the bench platform for random
	// filler pupils over the last year.
	Releases int
	// ExpiredTokens are expired access tokens over the last year, each
	// issued from a (sealed, rowless) authorization code.
	ExpiredTokens int
}

// bulkStore is what Fill needs of a store: one transaction of multi-row
// INSERTs (sqlstore.Store.Bulk).
type bulkStore interface {
	Bulk(ctx context.Context, load func(insert sqlstore.BulkInsert) error) error
}

const (
	fillPerSchool = 2000
	fillPerClass  = 25
)

// Fill adds size's rows to st in one transaction, after Prepare made the
// bench school and platform. It returns the rows inserted per table.
func Fill(ctx context.Context, st school.Store, size Size) (map[string]int, error) {
	if size.Pupils < 0 || size.Releases < 0 || size.ExpiredTokens < 0 {
		return nil, errors.New("bench fill: negative size")
	}
	if (size.Releases > 0 || size.ExpiredTokens > 0) && size.Pupils == 0 {
		return nil, errors.New("bench fill: releases and tokens need filler pupils")
	}
	bs, ok := st.(bulkStore)
	if !ok {
		return nil, fmt.Errorf("bench fill: the store (%T) has no bulk insert", st)
	}
	sch, err := st.SchoolByCode(ctx, "bench")
	if err != nil {
		return nil, fmt.Errorf("bench fill: bench school: %w", err)
	}
	pf, err := st.PlatformByClientID(ctx, benchClientID)
	if err != nil {
		return nil, fmt.Errorf("bench fill: bench platform: %w", err)
	}
	counts := map[string]int{}
	if size.Pupils == 0 {
		return counts, nil
	}
	now := time.Now()
	year := int64(365 * 24 * time.Hour / time.Microsecond)
	micros := func(t time.Time) int64 { return t.UnixMicro() }
	ago := func(span int64) int64 { return micros(now) - rand.Int64N(span) }
	run := school.NewID()[:6] // codes of this run's schools

	schools := []string{sch.ID}
	for i := fillPerSchool; i < size.Pupils; i += fillPerSchool {
		schools = append(schools, school.NewID())
	}
	schoolOf := func(pupil int) string { return schools[pupil/fillPerSchool] }
	pupils := ids(size.Pupils)
	classes := ids((size.Pupils + fillPerClass - 1) / fillPerClass)
	guardians := ids(2 * size.Pupils)
	attrs, err := json.Marshal(pf.Attributes)
	if err != nil {
		return nil, err
	}
	claims := `["sub","given_name","groups"]`
	type table struct {
		name string
		cols []string
		n    int
		row  func(i int) []any
	}
	// The release log and the tokens are written in time order with
	// time-ordered ids (school.NewLogID), as the server writes them, so
	// their rows and id index entries lie in the order the retention job
	// deletes them. tokenAt holds each expired token's creation time,
	// releaseAt each release's time, both ascending.
	releaseAt := times(size.Releases, func() int64 { return ago(year) })
	tokenAt := times(size.ExpiredTokens, func() int64 { return ago(year) - int64(time.Hour/time.Microsecond) })
	authIDs := make([]string, size.ExpiredTokens)
	tokenPupil := make([]string, size.ExpiredTokens)
	for i, t := range tokenAt {
		authIDs[i] = school.NewLogID(time.UnixMicro(t - 20e6)) // the request, 20 s before its token
		tokenPupil[i] = pupils[rand.IntN(len(pupils))]
	}
	tables := []table{
		{"schools", []string{"id", "code", "name", "domain", "created_at"}, len(schools) - 1, func(i int) []any {
			return []any{schools[i+1], fmt.Sprintf("bench-%s-%d", run, i+1), fmt.Sprintf("Fyldskole %d", i+1), fmt.Sprintf("f%s-%d.bench.elevid.test", run, i+1), ago(year)}
		}},
		{"platform_activations", []string{"school_id", "platform_id", "activated_by", "activated_at"}, len(schools) - 1, func(i int) []any {
			return []any{schools[i+1], pf.ID, "bench", ago(year)}
		}},
		{"classes", []string{"id", "school_id", "external_id", "name", "created_at"}, len(classes), func(i int) []any {
			return []any{classes[i], schoolOf(i * fillPerClass), school.NewID(), fmt.Sprintf("%d%c", 1+i/4%10, 'A'+i%4), ago(year)}
		}},
		{"pupils", []string{"id", "school_id", "external_id", "given_name", "family_name", "birth_date", "status", "quarantined_at", "created_at", "updated_at"}, len(pupils), func(i int) []any {
			t := ago(year)
			return []any{pupils[i], schoolOf(i), school.NewID(), fmt.Sprintf("Elev%d", i), "Fyld", fmt.Sprintf("201%d-0%d-1%d", i%8, 1+i%9, i%10), string(school.PupilActive), 0, t, t}
		}},
		{"guardians", []string{"id", "school_id", "external_id", "name", "email", "created_at"}, len(guardians), func(i int) []any {
			return []any{guardians[i], schoolOf(i / 2), school.NewID(), fmt.Sprintf("Forælder %d", i), fmt.Sprintf("g%d@f%s.bench.elevid.test", i, run), ago(year)}
		}},
		{"pupil_classes", []string{"pupil_id", "class_id"}, len(pupils), func(i int) []any {
			return []any{pupils[i], classes[i/fillPerClass]}
		}},
		{"pupil_guardians", []string{"pupil_id", "guardian_id"}, len(guardians), func(i int) []any {
			return []any{pupils[i/2], guardians[i]}
		}},
		{"enrolments", []string{"pupil_id", "school_id", "state", "consent_rule", "age", "flagged", "started_by", "created_at", "updated_at", "expires_at"}, len(pupils), func(i int) []any {
			t := ago(year)
			return []any{pupils[i], schoolOf(i), string(school.EnrolmentEnrolled), string(school.ConsentAny), 0, false, "", t, t, 0}
		}},
		{"consents", []string{"id", "pupil_id", "guardian_id", "platform_id", "decision", "attributes", "refused", "decided_at", "withdrawn_at", "verified_subject"}, len(pupils), func(i int) []any {
			return []any{school.NewID(), pupils[i], guardians[2*i], pf.ID, string(school.DecisionGranted), string(attrs), "[]", ago(year), 0, ""}
		}},
		{"pupil_handles", []string{"pupil_id", "handle"}, len(pupils), func(i int) []any {
			return []any{pupils[i], randBytes(64)}
		}},
		{"credentials", []string{"id", "owner_kind", "pupil_id", "school_id", "public_key", "attestation_format", "aaguid", "sign_count", "backup_eligible", "backup_state", "clone_warning", "transports", "label", "created_at", "last_used_at", "revoked_at"}, len(pupils), func(i int) []any {
			t := ago(year)
			return []any{randBytes(32), string(school.OwnerPupil), pupils[i], schoolOf(i), randBytes(77), "none", nil, 0, true, true, false, "internal,hybrid", "passkey", t, t, 0}
		}},
		{"releases", []string{"id", "pupil_id", "platform_id", "platform_name", "protocol", "via", "claims", "time"}, size.Releases, func(i int) []any {
			t := releaseAt[i]
			return []any{school.NewLogID(time.UnixMicro(t)), pupils[rand.IntN(len(pupils))], pf.ID, pf.Name, string(school.ProtocolOIDC), "id_token", claims, t}
		}},
		{"oidc_tokens", []string{"id", "kind", "hash", "platform_id", "pupil_id", "session_ref", "auth_request_id", "family_id", "subject", "scopes", "auth_time", "amr", "acr", "created_at", "expires_at", "used_at", "revoked_at", "code_id"}, size.ExpiredTokens, func(i int) []any {
			t := tokenAt[i]
			return []any{school.NewLogID(time.UnixMicro(t + 10e3)), string(school.TokenAccess), nil, pf.ID, tokenPupil[i], hex.EncodeToString(randBytes(32)), authIDs[i], authIDs[i], randText(32),
				"openid profile groups", t, "hwk user mfa", "https://refeds.org/profile/mfa", t + 10e3, t + 930e6, 0, 0, authIDs[i]}
		}},
	}
	err = bs.Bulk(ctx, func(insert sqlstore.BulkInsert) error {
		for _, t := range tables {
			if err := insert(t.name, t.cols, t.n, t.row); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			counts[t.name] = t.n
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bench fill: %w", err)
	}
	return counts, nil
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = school.NewID()
	}
	return out
}

// times returns n values of at, sorted ascending.
func times(n int, at func() int64) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = at()
	}
	slices.Sort(out)
	return out
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	crand.Read(b)
	return b
}

// randText is n random bytes in unpadded lower-case base32 (the shape of
// a pairwise subject).
func randText(n int) string {
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(randBytes(n)))
}
