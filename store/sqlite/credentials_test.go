package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/creditd/creditd/ledger"
)

// TestDatabaseWithoutRevocationsOpens: a database written before credential
// revocations existed (migration 7) opens read-only as it is, for
// `creditd verify` while an older server runs, and read-write with the
// revocation tables added and every account at generation 0.
func TestDatabaseWithoutRevocationsOpens(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "creditd.db")
	db, err := sql.Open("sqlite", dsn(path, modeWriter))
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := fs.Sub(migrationsFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true), goose.WithGoMigrations(migrateEntryRuns))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO accounts (id, plan, timezone, created_at, updated_at, version)
		VALUES ('A', 'free', 'UTC', 1, 1, 4)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	ro, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatalf("OpenReadOnly of a database without revocations: %v", err)
	}
	if a, err := ro.GetAccount(ctx, "A"); err != nil || a.Version != 4 {
		t.Errorf("read-only GetAccount: %+v, %v", a, err)
	}
	ro.Close()

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open of a database without revocations: %v", err)
	}
	defer s.Close()
	st, err := s.GetCredentialStatus(ctx, ledger.CredentialStatusParams{AccountID: "A", CredentialID: "n"})
	if err != nil || st != (ledger.CredentialStatus{}) {
		t.Fatalf("GetCredentialStatus after migration: %+v, %v", st, err)
	}
	if r, err := s.RevokeAccountCredentials(ctx, "A", t0); err != nil || r.Generation != 1 {
		t.Fatalf("RevokeAccountCredentials after migration: %+v, %v", r, err)
	}
	ro, err = OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatalf("OpenReadOnly after migration: %v", err)
	}
	defer ro.Close()
	if err := ro.RevokeCredential(ctx, ledger.RevokedCredential{ID: "n", AccountID: "A"}); err == nil {
		t.Error("a read-only store wrote a revocation")
	}
}
