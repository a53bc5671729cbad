package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/creditd/creditd/blob"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
	"github.com/creditd/creditd/store/postgres"
	"github.com/creditd/creditd/store/sqlite"
)

// backend is an opened store with its blob store and event bus.
type backend struct {
	store ledger.Store
	blobs blob.Store
	bus   engine.Bus // nil: the engine's local bus
	close func()
}

// openBackend opens PostgreSQL when dbURL is set, else SQLite in dataDir.
func openBackend(ctx context.Context, dbURL, dataDir string, maxConns int32, log *slog.Logger) (*backend, error) {
	if dbURL == "" {
		st, err := sqlite.Open(ctx, filepath.Join(dataDir, dbFileName))
		if err != nil {
			return nil, err
		}
		blobs, err := blob.NewDir(filepath.Join(dataDir, assetsDirName))
		if err != nil {
			st.Close()
			return nil, err
		}
		return &backend{store: st, blobs: blobs, close: func() { st.Close() }}, nil
	}
	st, err := postgres.Open(ctx, dbURL, postgres.Options{MaxConns: maxConns})
	if err != nil {
		return nil, err
	}
	bus, err := postgres.NewBus(ctx, st, log.With("component", "bus"))
	if err != nil {
		st.Close()
		return nil, err
	}
	return &backend{store: st, blobs: st.Blobs(), bus: bus, close: func() { bus.Close(); st.Close() }}, nil
}

// dbFlag defines --db, the PostgreSQL URL.
func dbFlag(c *command) *string {
	return c.stringEnv("db", "CREDITD_DATABASE_URL", "", "PostgreSQL URL (postgres://…); empty: embedded SQLite in --data")
}

// dbPoolFlag defines --db-max-conns, the PostgreSQL pool size of a node.
func dbPoolFlag(c *command) *int {
	return c.intEnv("db-max-conns", "CREDITD_DB_MAX_CONNS", int(postgres.DefaultMaxConns), "PostgreSQL connection pool size per node")
}

// migrateCmd applies PostgreSQL migrations (SQLite migrates at start).
func migrateCmd(args []string) error {
	c := newCommand("migrate", "creditd migrate --db postgres://…",
		"Applies the database migrations to PostgreSQL and exits. Optional: serve also\n"+
			"migrates at start, under an advisory lock. SQLite databases migrate when\n"+
			"serve opens them.")
	dbURL := dbFlag(c)
	if err := c.parseNone(args); err != nil {
		return err
	}
	if *dbURL == "" {
		return fmt.Errorf("migrate needs --db postgres://… (SQLite databases migrate when serve starts)")
	}
	if err := postgres.Migrate(context.Background(), *dbURL); err != nil {
		return err
	}
	fmt.Println("migrations applied")
	return nil
}
