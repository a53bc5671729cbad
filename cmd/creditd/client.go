package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// clientTimeout bounds one CLI request.
const clientTimeout = 30 * time.Second

type client struct {
	server, key string
}

// clientFlags defines the flags every client command takes: where the
// server is and the admin key.
// oneAccount parses a client command's arguments, which name one account,
// and makes its client.
func oneAccount(c *command, mk func() (*client, error), args []string) (id string, cl *client, err error) {
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

func clientFlags(c *command) func() (*client, error) {
	server := c.stringEnv("server", "CREDITD_URL", "http://127.0.0.1:8080", "server URL")
	key := c.stringEnv("key", "CREDITD_ADMIN_KEY", "", "admin key (default: the key stored in --data)")
	data := c.stringEnv("data", "CREDITD_DATA", "./data", "data directory of a local server (to read its "+adminKeyFileName+" when no key is given)")
	return func() (*client, error) {
		k := *key
		if k == "" {
			b, err := os.ReadFile(filepath.Join(*data, adminKeyFileName))
			if err != nil {
				return nil, fmt.Errorf("no admin key: pass --key or set CREDITD_ADMIN_KEY (%v)", err)
			}
			k = strings.TrimSpace(string(b))
		}
		return &client{server: strings.TrimRight(*server, "/"), key: k}, nil
	}
}

// do sends a request and prints the JSON response; non-2xx is an error.
func (c *client) do(method, path string, body any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.server+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: clientTimeout}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if json.Indent(&out, b, "", "  ") != nil {
		out.Reset()
		out.Write(b)
	}
	if resp.StatusCode >= 300 {
		fmt.Fprint(os.Stderr, out.String())
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	fmt.Print(out.String())
	return nil
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
		return cl.do("GET", "/v1/accounts/"+url.PathEscape(id), nil)
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
	body := map[string]string{}
	if *plan != "" {
		body["plan"] = *plan
	}
	if *tz != "" {
		body["timezone"] = *tz
	}
	return cl.do("PUT", "/v1/accounts/"+url.PathEscape(id), body)
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
	body := map[string]any{"amount": *amount, "source": *source}
	if *expires != "" {
		body["expires_at"] = *expires
	}
	if *ref != "" {
		body["reference"] = *ref
	}
	return cl.do("POST", "/v1/accounts/"+url.PathEscape(id)+"/grants", body)
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
	return cl.do("GET", "/v1/accounts/"+url.PathEscape(id)+"/balance", nil)
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
	q := url.Values{"limit": {fmt.Sprint(*limit)}}
	if *cursor != "" {
		q.Set("cursor", *cursor)
	}
	return cl.do("GET", "/v1/accounts/"+url.PathEscape(id)+"/entries?"+q.Encode(), nil)
}
