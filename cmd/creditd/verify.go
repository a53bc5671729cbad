package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/postgres"
	"github.com/creditd/creditd/store/sqlite"
)

func verify(args []string) error {
	c := newCommand("verify", "creditd verify [--data ./data | --db postgres://…] [--json]",
		"Replays every account's ledger and checks it against the stored balances,\n"+
			"grants and holds; prints each mismatch and exits 1 if there is any.\n"+
			"It opens SQLite read-only, so it can run while the server does. Give it the\n"+
			"server's --config, whose rules the ledger was written with.")
	data := c.stringEnv("data", "CREDITD_DATA", "./data", "data directory (its "+dbFileName+")")
	asJSON := c.Bool("json", false, "print the report as JSON")
	cfgPath := c.stringEnv("config", "CREDITD_CONFIG", "", "JSON config file (the server's)")
	dbURL := dbFlag(c)
	if err := c.parseNone(args); err != nil {
		return err
	}
	cfg, err := ledger.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	ctx := context.Background()
	var store ledger.Store
	if *dbURL != "" {
		pg, err := postgres.Open(ctx, *dbURL, postgres.Options{MaxConns: 2})
		if err != nil {
			return err
		}
		store = pg
	} else {
		path := filepath.Join(*data, dbFileName)
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("no database at %s: %w", path, err)
		}
		lite, err := sqlite.OpenReadOnly(ctx, path)
		if err != nil {
			return err
		}
		store = lite
	}
	defer store.Close()
	rep, err := ledger.VerifyStore(ctx, cfg, store)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		for _, p := range rep.Problems {
			fmt.Println("MISMATCH", p)
		}
		fmt.Printf("verified %d accounts, %d entries: %d problems\n", rep.Accounts, rep.Entries, len(rep.Problems))
	}
	if len(rep.Problems) > 0 {
		return exitError(1)
	}
	return nil
}
