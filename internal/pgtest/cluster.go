package pgtest

import (
	"os"
	"testing"
)

// Cluster is a private throwaway PostgreSQL cluster that one test owns
// and may stop and start again (fault tests: the database going away under
// load). It never is the shared server of DSN: a test must not restart a
// server other tests use.
type Cluster struct {
	c *cluster
}

// NewCluster initialises and starts a private cluster (as the postgres OS
// user when running as root), stopped and removed when t ends. It skips t
// when no cluster can be had (fails it under $CREDITD_CI=1).
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := startCluster()
	if err != nil {
		if os.Getenv(EnvCI) == "1" {
			t.Fatalf("pgtest: no private PostgreSQL cluster (%s=1, so this is a failure, not a skip): %v", EnvCI, err)
		}
		t.Skipf("pgtest: no private PostgreSQL cluster, skipping: %v", err)
	}
	t.Cleanup(func() {
		if err := c.stop(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return &Cluster{c: c}
}

// DSN returns the DSN of a new, empty database on the cluster (dropped
// with the cluster).
func (c *Cluster) DSN(t testing.TB) string {
	t.Helper()
	dsn, _, err := createDatabase(c.c.dsn)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dsn
}

// Stop shuts the postmaster down with a fast shutdown: every client is
// disconnected and the port refuses connections until Start.
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	if err := c.c.halt(); err != nil {
		t.Fatalf("pgtest: stop cluster: %v", err)
	}
}

// Start starts the stopped postmaster again on the same port and data and
// waits until it answers.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	if err := c.c.start(); err != nil {
		t.Fatalf("pgtest: start cluster: %v", err)
	}
}
