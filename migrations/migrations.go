// Package migrations embeds ElevID's database schema as goose SQL
// migrations, one folder per dialect (sqlite/, postgres/) with the same
// version numbers, so both stores always have the same shape.
//
// Each migration runs in a transaction: one that fails leaves the schema
// at the previous version.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// Dialect names a folder of migrations.
type Dialect string

// The two dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// FS returns the migrations of one dialect.
func FS(d Dialect) fs.FS {
	sub, err := fs.Sub(files, string(d))
	if err != nil {
		panic(err) // the folders are embedded; this cannot fail
	}
	return sub
}

// Up applies every pending migration of dialect d to db and returns the
// schema version afterwards.
func Up(ctx context.Context, db *sql.DB, d Dialect) (int64, error) {
	return up(ctx, db, d, FS(d))
}

func up(ctx context.Context, db *sql.DB, d Dialect, fsys fs.FS) (int64, error) {
	gd := goose.DialectSQLite3
	var opts []goose.ProviderOption
	if d == Postgres {
		gd = goose.DialectPostgres
		// Several nodes may start at once: one migrates, the others wait.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return 0, fmt.Errorf("migrations: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(gd, db, fsys, opts...)
	if err != nil {
		return 0, fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return 0, fmt.Errorf("migrations: %w", err)
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrations: %w", err)
	}
	return v, nil
}
