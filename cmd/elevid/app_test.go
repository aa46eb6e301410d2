package main

import (
	"context"
	"log/slog"
	"testing"
)

// openTestApp opens and migrates the app of cfg and loads its secrets, as
// serve does; the app is closed when the test ends.
func openTestApp(t *testing.T, cfg Config, log *slog.Logger) *app {
	t.Helper()
	ctx := context.Background()
	a, _, err := openMigrated(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if err := a.loadSecrets(ctx); err != nil {
		t.Fatal(err)
	}
	return a
}
