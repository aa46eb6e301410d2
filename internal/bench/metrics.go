package bench

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// dbWork is a reading of a server's database counters.
type dbWork struct{ tx, single, inTx int64 }

// scrapeWork reads the store counters from the server's metrics URL.
func scrapeWork(ctx context.Context, metricsURL, token string) (dbWork, bool) {
	if metricsURL == "" {
		return dbWork{}, false
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return dbWork{}, false
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return dbWork{}, false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return dbWork{}, false
	}
	var w dbWork
	found := 0
	for line := range strings.Lines(string(b)) {
		name, value, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		var dst *int64
		switch name {
		case "elevid_store_transactions_total":
			dst = &w.tx
		case "elevid_store_statements_total":
			dst = &w.single
		case "elevid_store_tx_statements_total":
			dst = &w.inTx
		default:
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return dbWork{}, false
		}
		*dst = int64(v)
		found++
	}
	return w, found == 3
}

// scrapeAll sums the store counters of every metrics URL; it is false
// when there are none or one of them cannot be read.
func scrapeAll(ctx context.Context, urls []string, token string) (dbWork, bool) {
	var sum dbWork
	for _, u := range urls {
		w, ok := scrapeWork(ctx, u, token)
		if !ok {
			return dbWork{}, false
		}
		sum.tx += w.tx
		sum.single += w.single
		sum.inTx += w.inTx
	}
	return sum, len(urls) > 0
}

// processCPU is the user and system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
