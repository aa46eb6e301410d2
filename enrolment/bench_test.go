package enrolment_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks of the two finish handlers, the steps that verify a
// signature and write to the store. Setup (pupils, codes, begun
// ceremonies, signed authenticator answers) is outside the timer. Run
// e.g. go test -run '^$' -bench Finish -benchtime 2000x ./enrolment/
// (PostgreSQL too when ELEVID_TEST_POSTGRES is set).

func BenchmarkRegistrationFinish(b *testing.B) {
	for _, kind := range []storeKind{onSQLite, onPostgres} {
		b.Run(string(kind), func(b *testing.B) { benchRegistration(b, kind) })
	}
}

func BenchmarkLoginFinish(b *testing.B) {
	for _, kind := range []storeKind{onSQLite, onPostgres} {
		b.Run(string(kind), func(b *testing.B) { benchLogin(b, kind, 1) })
		b.Run(string(kind)+"-parallel8", func(b *testing.B) { benchLogin(b, kind, 8) })
	}
}

func finishRequest(path string, body []byte) *http.Request {
	r := httptest.NewRequest("POST", path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

func benchRegistration(b *testing.B, kind storeKind) {
	e := newEnv(b, kind)
	h := e.srv.Config.Handler
	br := e.browser("da")
	bodies := make([][]byte, b.N)
	for i := range bodies {
		p := e.newPupil(fmt.Sprintf("P%d", i), true)
		cer, opts := br.beginEnrol(e.issue(p))
		bodies[i], _ = json.Marshal(map[string]any{"ceremony": cer, "label": "x", "credential": e.device().attest(opts)})
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, finishRequest("/enrol/finish", bodies[i]))
		if rec.Code != 200 {
			b.Fatalf("finish = %d %s\n%s", rec.Code, rec.Body, e.logs)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

func benchLogin(b *testing.B, kind storeKind, parallel int) {
	e := newEnv(b, kind)
	h := e.srv.Config.Handler
	br := e.browser("da")
	d := e.device()
	br.enrol(d, e.issue(e.pupil), "")
	bodies := make([][]byte, b.N)
	for i := range bodies {
		cer, opts := br.beginLogin()
		d.cred.Counter = uint32(i + 1)
		bodies[i], _ = json.Marshal(map[string]any{"ceremony": cer, "credential": d.assert(opts)})
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var next, failed atomic.Int64
	done := make(chan struct{})
	for range parallel {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, finishRequest("/login/finish", bodies[i]))
				if rec.Code != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	for range parallel {
		<-done
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
	if failed.Load() > 0 {
		b.Fatalf("%d of %d logins failed", failed.Load(), b.N)
	}
}
