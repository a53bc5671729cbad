package postgres

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/creditd/creditd/internal/pgtest"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/storetest"
)

// TestHOTUpdates: what a charge rewrites in a batch (the account's version,
// a bucket's remaining and held credits) is updated in place (a HOT
// update: no new index entries), and a bucket that becomes exhausted
// leaves grants_live, so LoadState no longer returns it.
func TestHOTUpdates(t *testing.T) {
	ctx := context.Background()
	s, _ := openNew(t)
	g := &ledger.Grant{ID: "g1", AccountID: "A", Source: ledger.SourceAdmin, AmountCredits: 10, RemainingCredits: 10, CreatedAt: t0}
	commit(t, s, func(b ledger.Batch) error {
		return errors.Join(b.SaveAccounts(ctx, []*ledger.Account{account("A", 1)}), b.SaveGrants(ctx, []*ledger.Grant{g}))
	})

	// hot reports the (HOT) updates of a table by the batch's session that
	// are not yet in the cumulative statistics: the transaction's, and
	// maybe earlier ones'.
	hot := func(b ledger.Batch, table string) (upd, hot int64) {
		t.Helper()
		err := b.(*batch).conn.QueryRow(ctx, `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = $1`, table).Scan(&upd, &hot)
		if err != nil {
			t.Fatal(err)
		}
		return upd, hot
	}
	for i, c := range []struct{ remaining, held, charged int64 }{{5, 5, 0}, {5, 0, 5}, {0, 5, 5}, {0, 0, 10}} {
		b, err := s.BeginBatch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.LockAccounts(ctx, []string{"A"}); err != nil {
			t.Fatal(err)
		}
		aUpd0, aHot0 := hot(b, "accounts")
		gUpd0, gHot0 := hot(b, "grants")
		g2 := *g
		g2.RemainingCredits, g2.HeldCredits, g2.ChargedCredits = c.remaining, c.held, c.charged
		if err := errors.Join(b.SaveAccounts(ctx, []*ledger.Account{account("A", int64(i+2))}),
			b.SaveGrants(ctx, []*ledger.Grant{&g2})); err != nil {
			t.Fatal(err)
		}
		if _, err := b.GetHold(ctx, "none"); ledger.ErrorCode(err) != ledger.ENotFound { // sends the deferred writes
			t.Fatalf("GetHold: %v", err)
		}
		if upd, h := hot(b, "accounts"); upd-aUpd0 != 1 || h-aHot0 != 1 {
			t.Errorf("update %d: accounts: %d updates, %d HOT; want 1, 1", i, upd-aUpd0, h-aHot0)
		}
		exhausted := c.remaining == 0 && c.held == 0
		if upd, h := hot(b, "grants"); upd-gUpd0 != 1 || (h-gHot0 == 1) == exhausted {
			t.Errorf("update %d to %+v: grants: %d updates, %d HOT; want 1, HOT unless the bucket is exhausted", i, c, upd-gUpd0, h-gHot0)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		st, err := s.LoadState(ctx, "A")
		if err != nil {
			t.Fatal(err)
		}
		if live := len(st.Grants) == 1; live == exhausted {
			t.Errorf("update %d to %+v: LoadState returns %d buckets", i, c, len(st.Grants))
		}
	}
}

// TestMigrationHOT: migration 4 computes live for the grants already
// stored, and goes down again.
func TestMigrationHOT(t *testing.T) {
	ctx := context.Background()
	dsn, db, p := migrationProvider(t)
	if _, err := p.UpTo(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO accounts (id, plan, timezone, created_at, updated_at) VALUES ('A', 'paid', 'UTC', 1, 1);
		INSERT INTO grants (id, account_id, source, amount, remaining, held, charged, expired, created_at) VALUES
		('g1', 'A', 'admin', 10, 10, 0, 0, 0, 1), ('g2', 'A', 'admin', 10, 0, 5, 5, 0, 2), ('g3', 'A', 'admin', 10, 0, 0, 10, 0, 3)`); err != nil {
		t.Fatal(err)
	}
	s := open(t, dsn) // migrates to the latest version
	st, err := s.LoadState(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Grants) != 2 || st.Grants[0].ID != "g1" || st.Grants[1].ID != "g2" {
		t.Errorf("live grants after the migration: %+v, want g1, g2", st.Grants)
	}
	s.Close()
	if _, err := p.DownTo(ctx, 3); err != nil {
		t.Fatalf("down: %v", err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM grants WHERE account_id = 'A' AND (remaining > 0 OR held > 0)`).Scan(&n); err != nil || n != 2 {
		t.Errorf("after down: %d live grants, %v", n, err)
	}
}

// TestMigrationAssetUploads: after migration 6, the uploads a previous
// version stored count toward the account's budget (outputs do not), and
// the migration goes down again.
func TestMigrationAssetUploads(t *testing.T) {
	ctx := context.Background()
	dsn, db, p := migrationProvider(t)
	if _, err := p.UpTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO assets (id, account_id, job_id, kind, content_type, bytes, created_at) VALUES
		('u1', 'A', '', 'upload', 'image/png', 100, 1), ('o1', 'A', 'j1', 'output', 'image/png', 5000, 2),
		('u2', 'A', '', 'upload', 'image/png', 20, 3), ('u3', 'B', '', 'upload', 'image/png', 7, 4)`); err != nil {
		t.Fatal(err)
	}
	s := open(t, dsn) // migrates to the latest version
	if u, err := s.UploadUsage(ctx, "A"); err != nil || u != (ledger.UploadUsage{Count: 2, Bytes: 120}) {
		t.Errorf("UploadUsage of A after the migration: %+v, %v", u, err)
	}
	if err := s.DeleteAsset(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	if u, err := s.UploadUsage(ctx, "A"); err != nil || u != (ledger.UploadUsage{Count: 1, Bytes: 20}) {
		t.Errorf("UploadUsage of A after a delete: %+v, %v", u, err)
	}
	s.Close()
	if _, err := p.DownTo(ctx, 5); err != nil {
		t.Fatalf("down: %v", err)
	}
}

// TestMigrationAssetState: outputs an earlier version stored become
// staged unless their succeeded job lists them (migration 8), and the
// migration goes down again.
func TestMigrationAssetState(t *testing.T) {
	ctx := context.Background()
	dsn, db, p := migrationProvider(t)
	if _, err := p.UpTo(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, storetest.LeftoverOutputsSQL); err != nil {
		t.Fatal(err)
	}
	s := open(t, dsn) // migrates to the latest version
	storetest.CheckLeftoverOutputs(t, s)
	s.Close()
	if _, err := p.DownTo(ctx, 7); err != nil {
		t.Fatalf("down: %v", err)
	}
}

// migrationProvider returns a fresh database (its DSN and a connection,
// closed when t ends) and a goose provider over the store's migrations,
// for tests that stop at an earlier version.
func migrationProvider(t *testing.T) (string, *sql.DB, *goose.Provider) {
	t.Helper()
	dsn := pgtest.DSN(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { db.Close() })
	fsys, err := fs.Sub(migrationsFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	return dsn, db, p
}
