package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/creditd/creditd/client"
)

// oneAccount parses a client command's arguments, which name one account,
// and makes its client.
func oneAccount(c *command, mk func() (*client.Client, error), args []string) (id string, cl *client.Client, err error) {
	pos, err := c.parse(args)
	if err != nil {
		return "", nil, err
	}
	if err := c.wantArgs(pos, 1); err != nil {
		return "", nil, err
	}
	cl, err = mk()
	if err != nil {
		return "", nil, err
	}
	return pos[0], cl, nil
}

// clientFlags defines the flags every client command takes: where the
// server is and the admin key.
func clientFlags(c *command) func() (*client.Client, error) {
	server := c.stringEnv("server", "CREDITD_URL", "http://127.0.0.1:8080", "server URL")
	key := c.stringEnv("key", "CREDITD_ADMIN_KEY", "", "admin key (default: the key stored in --data)")
	data := c.stringEnv("data", "CREDITD_DATA", "./data", "data directory of a local server (to read its "+adminKeyFileName+" when no key is given)")
	return func() (*client.Client, error) {
		k := *key
		if k == "" {
			b, err := os.ReadFile(filepath.Join(*data, adminKeyFileName))
			if err != nil {
				return nil, fmt.Errorf("no admin key: pass --key or set CREDITD_ADMIN_KEY (%v)", err)
			}
			k = strings.TrimSpace(string(b))
		}
		cl := client.New(*server, k)
		cl.UserAgent = "creditd-cli"
		return cl, nil
	}
}

// show prints a client call's answer as indented JSON. An error answer
// (*client.Error) prints the server's error body on stderr and is an
// error naming the request and its status.
func show(v any, err error) error {
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Fprint(os.Stderr, indent(e.Body))
		return fmt.Errorf("%s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	}
	if err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	fmt.Print(indent(b))
	return nil
}

func indent(b []byte) string {
	var out bytes.Buffer
	if json.Indent(&out, b, "", "  ") != nil {
		return string(b)
	}
	return out.String()
}

// clientContext bounds a client command.
func clientContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), client.CallTimeout+5*time.Second)
}

// clientAbout ends the help of every client command.
const clientAbout = `
It talks to a running server with the admin key and prints the server's
JSON answer; an error answer is printed on stderr and exits 1.`

const accountUsage = `usage: creditd account get ID [flags]
       creditd account put ID [--plan free|paid] [--timezone ZONE] [flags]

get prints an account; put creates it (with its sign-up credits and, on the
free plan, today's daily credits) or changes its plan or time zone.
"creditd account get --help" and "creditd account put --help" list the flags.
`

func accountCmd(args []string) error {
	if len(args) == 1 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
		fmt.Print(accountUsage)
		return nil
	}
	if len(args) < 1 || (args[0] != "get" && args[0] != "put") {
		fmt.Fprint(os.Stderr, accountUsage)
		return exitError(2)
	}
	if args[0] == "get" {
		c := newCommand("account get", "creditd account get ID [flags]", "Prints the account ID: plan, time zone, when it was created and updated."+clientAbout)
		mk := clientFlags(c)
		id, cl, err := oneAccount(c, mk, args[1:])
		if err != nil {
			return err
		}
		ctx, cancel := clientContext()
		defer cancel()
		return show(cl.Account(ctx, id))
	}
	c := newCommand("account put", "creditd account put ID [--plan free|paid] [--timezone ZONE] [flags]",
		"Creates the account ID (201: its sign-up credits and, on the free plan, today's\n"+
			"daily credits) or changes its plan or time zone (200). An omitted flag keeps\n"+
			"the account's value (free and UTC for a new account)."+clientAbout)
	mk := clientFlags(c)
	plan := c.String("plan", "", "free or paid")
	tz := c.String("timezone", "", "IANA time zone, e.g. Europe/Berlin")
	id, cl, err := oneAccount(c, mk, args[1:])
	if err != nil {
		return err
	}
	ctx, cancel := clientContext()
	defer cancel()
	return show(cl.PutAccount(ctx, id, client.PutAccountRequest{Plan: *plan, Timezone: *tz}))
}

func grantCmd(args []string) error {
	c := newCommand("grant", "creditd grant ID --amount N [--source admin|promo|purchase] [--expires-at RFC3339] [--reference REF] [flags]",
		"Grants credits to the account ID. A reference makes the grant idempotent: the\n"+
			"same reference again returns the first grant; with other figures it is a 409."+clientAbout)
	mk := clientFlags(c)
	amount := c.Int64("amount", 0, "credits to grant")
	source := c.String("source", "admin", "admin, promo or purchase")
	expires := c.String("expires-at", "", "RFC 3339 expiry (optional)")
	ref := c.String("reference", "", "reference; makes the grant idempotent (optional)")
	id, cl, err := oneAccount(c, mk, args)
	if err != nil {
		return err
	}
	req := client.GrantRequest{Amount: *amount, Source: *source, Reference: *ref}
	if *expires != "" {
		t, err := time.Parse(time.RFC3339, *expires)
		if err != nil {
			return c.usageError("--expires-at: %v", err)
		}
		req.ExpiresAt = &t
	}
	ctx, cancel := clientContext()
	defer cancel()
	return show(cl.Grant(ctx, id, req))
}

func balanceCmd(args []string) error {
	c := newCommand("balance", "creditd balance ID [flags]",
		"Prints the account's balance: available credits (in all, and per category),\n"+
			"credits held by running work, and its buckets."+clientAbout)
	mk := clientFlags(c)
	id, cl, err := oneAccount(c, mk, args)
	if err != nil {
		return err
	}
	ctx, cancel := clientContext()
	defer cancel()
	return show(cl.Balance(ctx, id))
}

func entriesCmd(args []string) error {
	c := newCommand("entries", "creditd entries ID [--limit N] [--cursor C] [flags]",
		"Prints the account's ledger entries, newest first, one page at a time: pass\n"+
			"the page's next_cursor as --cursor for the next one."+clientAbout)
	mk := clientFlags(c)
	limit := c.Int("limit", 20, "page size")
	cursor := c.String("cursor", "", "next_cursor of the previous page")
	id, cl, err := oneAccount(c, mk, args)
	if err != nil {
		return err
	}
	ctx, cancel := clientContext()
	defer cancel()
	// The page size as given: the server checks it.
	return show(cl.Entries(ctx, id, client.ListParams{Cursor: *cursor}, client.WithQuery("limit", strconv.Itoa(*limit))))
}
