package main

import (
	"context"
	"errors"
	"io"
)

// cmdSync runs `elevid sync`.
func cmdSync(ctx context.Context, a *app, out io.Writer, args []string) error {
	return errors.New("sync: the LDAP roster sync is not part of this build yet")
}
