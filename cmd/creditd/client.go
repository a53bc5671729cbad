package main

import (
	"bytes"
	"encoding/json"
	"flag"
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

func clientFlags(fs *flag.FlagSet) func() (*client, error) {
	server := fs.String("server", envOr("CREDITD_URL", "http://127.0.0.1:8080"), "server URL")
	key := fs.String("key", os.Getenv("CREDITD_ADMIN_KEY"), "admin key")
	data := fs.String("data", envOr("CREDITD_DATA", "./data"), "data directory (to find the admin key)")
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

func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func accountCmd(args []string) error {
	if len(args) < 1 || (args[0] != "get" && args[0] != "put") {
		return fmt.Errorf("usage: creditd account get|put ID [--plan free|paid] [--timezone ZONE]")
	}
	sub := args[0]
	fs := flag.NewFlagSet("account "+sub, flag.ExitOnError)
	mk := clientFlags(fs)
	plan := fs.String("plan", "", "free or paid")
	tz := fs.String("timezone", "", "IANA time zone")
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil || len(pos) != 1 {
		return fmt.Errorf("usage: creditd account %s ID", sub)
	}
	c, err := mk()
	if err != nil {
		return err
	}
	path := "/v1/accounts/" + url.PathEscape(pos[0])
	if sub == "get" {
		return c.do("GET", path, nil)
	}
	body := map[string]string{}
	if *plan != "" {
		body["plan"] = *plan
	}
	if *tz != "" {
		body["timezone"] = *tz
	}
	return c.do("PUT", path, body)
}

func grantCmd(args []string) error {
	fs := flag.NewFlagSet("grant", flag.ExitOnError)
	mk := clientFlags(fs)
	amount := fs.Int64("amount", 0, "credits to grant")
	source := fs.String("source", "admin", "admin, promo or purchase")
	expires := fs.String("expires-at", "", "RFC 3339 expiry (optional)")
	ref := fs.String("reference", "", "reference; makes the grant idempotent (optional)")
	pos, err := parseInterleaved(fs, args)
	if err != nil || len(pos) != 1 {
		return fmt.Errorf("usage: creditd grant ID --amount N [--source admin] [--expires-at T] [--reference R]")
	}
	c, err := mk()
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
	return c.do("POST", "/v1/accounts/"+url.PathEscape(pos[0])+"/grants", body)
}

func balanceCmd(args []string) error {
	fs := flag.NewFlagSet("balance", flag.ExitOnError)
	mk := clientFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil || len(pos) != 1 {
		return fmt.Errorf("usage: creditd balance ID")
	}
	c, err := mk()
	if err != nil {
		return err
	}
	return c.do("GET", "/v1/accounts/"+url.PathEscape(pos[0])+"/balance", nil)
}

func entriesCmd(args []string) error {
	fs := flag.NewFlagSet("entries", flag.ExitOnError)
	mk := clientFlags(fs)
	limit := fs.Int("limit", 20, "page size")
	cursor := fs.String("cursor", "", "next_cursor of the previous page")
	pos, err := parseInterleaved(fs, args)
	if err != nil || len(pos) != 1 {
		return fmt.Errorf("usage: creditd entries ID [--limit N] [--cursor C]")
	}
	c, err := mk()
	if err != nil {
		return err
	}
	q := url.Values{"limit": {fmt.Sprint(*limit)}}
	if *cursor != "" {
		q.Set("cursor", *cursor)
	}
	return c.do("GET", "/v1/accounts/"+url.PathEscape(pos[0])+"/entries?"+q.Encode(), nil)
}
