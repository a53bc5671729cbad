package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPGURL is the server tried when no --db is given.
const DefaultPGURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// pgDatabase is a fresh database created for one bench run.
type pgDatabase struct {
	admin   string // DSN of the server's maintenance database
	name    string
	dsn     string // DSN of the fresh database
	version string
	sync    string // synchronous_commit
	fsync   string
}

// createPGDatabase connects to admin (a URL naming any database the role
// may connect to) and creates creditd_bench_<random>.
func createPGDatabase(ctx context.Context, admin string) (*pgDatabase, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, admin)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	d := &pgDatabase{admin: admin, name: "creditd_bench_" + strings.ToLower(rand.Text()[:12])}
	if err := conn.QueryRow(cctx, "SELECT current_setting('server_version'), current_setting('synchronous_commit'), current_setting('fsync')").
		Scan(&d.version, &d.sync, &d.fsync); err != nil {
		return nil, err
	}
	if _, err := conn.Exec(cctx, "CREATE DATABASE "+pgx.Identifier{d.name}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create database %s: %w", d.name, err)
	}
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("--db must be a postgres:// URL")
	}
	u.Path = "/" + d.name
	d.dsn = u.String()
	return d, nil
}

// drop removes the database, closing any connection left to it.
func (d *pgDatabase) drop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.admin)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{d.name}.Sanitize()+" WITH (FORCE)")
	return err
}

// analyze refreshes the planner statistics of the whole database.
func (d *pgDatabase) analyze(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, d.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "ANALYZE")
	return err
}
