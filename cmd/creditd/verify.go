package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/postgres"
	"github.com/creditd/creditd/store/sqlite"
)

func verify(args []string) error {
	fs := flag.NewFlagSet("verify", flag.ExitOnError)
	data := fs.String("data", envOr("CREDITD_DATA", "./data"), "data directory")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	cfgPath := fs.String("config", os.Getenv("CREDITD_CONFIG"), "JSON config file")
	dbURL, _ := dbFlags(fs)
	_ = fs.Parse(args)
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
