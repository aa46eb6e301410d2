package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
)

// cmdSync runs `elevid sync`.
func cmdSync(ctx context.Context, a *app, out io.Writer, args []string) error {
	return errors.New("sync: the LDAP roster sync is not part of this build yet")
}

// cmdBench runs `elevid bench`.
func cmdBench(ctx context.Context, cfg Config, log *slog.Logger, out io.Writer, args []string) error {
	return errors.New("bench: the load command is not part of this build yet")
}
