package billing

import (
	"flag"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadFromEnv(t *testing.T) {
	c, err := loadFromEnv(env(nil))
	if err != nil || c.SecretKey != "" || len(c.Packs) != 2 || c.WebhookTolerance != DefaultWebhookTolerance {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	c, err = loadFromEnv(env(map[string]string{
		EnvSecretKey:        "sk_test_1",
		EnvWebhookSecret:    "whsec_1",
		EnvAPIBase:          "http://127.0.0.1:12111",
		EnvPaidPriceIDs:     "price_a, price_b,",
		EnvWebhookTolerance: "2m",
		EnvPacks:            `[{"id":"tiny","name":"10 credits","credits":10,"amount":100,"currency":"eur"}]`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.SecretKey != "sk_test_1" || c.WebhookSecret != "whsec_1" || c.APIBase != "http://127.0.0.1:12111" ||
		!slices.Equal(c.PaidPriceIDs, []string{"price_a", "price_b"}) || c.WebhookTolerance != 2*time.Minute ||
		len(c.Packs) != 1 || c.Packs[0] != (Pack{ID: "tiny", Name: "10 credits", Credits: 10, AmountMinor: 100, Currency: "eur"}) {
		t.Fatalf("env: %+v", c)
	}

	for name, m := range map[string]map[string]string{
		"only the secret key":    {EnvSecretKey: "sk_test_1"},
		"only the webhook key":   {EnvWebhookSecret: "whsec_1"},
		"bad tolerance":          {EnvWebhookTolerance: "soon"},
		"negative tolerance":     {EnvWebhookTolerance: "-1s"},
		"bad api base":           {EnvAPIBase: "localhost:12111"},
		"packs not JSON":         {EnvPacks: "small=100"},
		"pack unknown field":     {EnvPacks: `[{"id":"a","name":"A","credits":1,"amount":1,"currency":"usd","bonus":5}]`},
		"pack without credits":   {EnvPacks: `[{"id":"a","name":"A","credits":0,"amount":1,"currency":"usd"}]`},
		"pack without price":     {EnvPacks: `[{"id":"a","name":"A","credits":1,"amount":0,"currency":"usd"}]`},
		"pack bad currency":      {EnvPacks: `[{"id":"a","name":"A","credits":1,"amount":1,"currency":"USD"}]`},
		"pack bad id":            {EnvPacks: `[{"id":"A b","name":"A","credits":1,"amount":1,"currency":"usd"}]`},
		"pack twice":             {EnvPacks: `[{"id":"a","name":"A","credits":1,"amount":1,"currency":"usd"},{"id":"a","name":"B","credits":2,"amount":2,"currency":"usd"}]`},
		"pack without name":      {EnvPacks: `[{"id":"a","credits":1,"amount":1,"currency":"usd"}]`},
		"packs trailing garbage": {EnvPacks: `[] []`},
	} {
		if _, err := loadFromEnv(env(m)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestRegisterFlagsOverrideEnv(t *testing.T) {
	c, err := loadFromEnv(env(map[string]string{EnvSecretKey: "sk_env", EnvWebhookSecret: "whsec_env"}))
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.RegisterFlags(fs)
	err = fs.Parse([]string{"--stripe-secret-key", "sk_flag", "--stripe-paid-price-ids", "price_x",
		"--packs", `[{"id":"one","name":"One","credits":1,"amount":50,"currency":"usd"}]`, "--stripe-webhook-tolerance", "1m"})
	if err != nil {
		t.Fatal(err)
	}
	if c.SecretKey != "sk_flag" || c.WebhookSecret != "whsec_env" || !slices.Equal(c.PaidPriceIDs, []string{"price_x"}) ||
		len(c.Packs) != 1 || c.Packs[0].ID != "one" || c.WebhookTolerance != time.Minute {
		t.Fatalf("flags: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--packs", "nope"}); err == nil || !strings.Contains(err.Error(), "packs") {
		t.Fatalf("bad --packs: %v", err)
	}
}

func TestPackPrice(t *testing.T) {
	for _, c := range []struct {
		p    Pack
		want string
	}{
		{Pack{AmountMinor: 500, Currency: "usd"}, "$5.00"},
		{Pack{AmountMinor: 2000, Currency: "usd"}, "$20.00"},
		{Pack{AmountMinor: 99_999_999, Currency: "usd"}, "$999,999.99"},
		{Pack{AmountMinor: 1999, Currency: "eur"}, "€19.99"},
		{Pack{AmountMinor: 5, Currency: "gbp"}, "£0.05"},
		{Pack{AmountMinor: 500, Currency: "jpy"}, "¥500"},
		{Pack{AmountMinor: 1_250_000, Currency: "krw"}, "₩1,250,000"},
		{Pack{AmountMinor: 990, Currency: "cad"}, "CA$9.90"},
		{Pack{AmountMinor: 500, Currency: "chf"}, "CHF 5.00"},
		{Pack{AmountMinor: 5250, Currency: "kwd"}, "KWD 5.250"},
		{Pack{AmountMinor: 500, Currency: "zzz"}, "ZZZ 5.00"},
	} {
		if got := c.p.Price(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.p, got, c.want)
		}
	}
}

func TestReturnURLs(t *testing.T) {
	s := &Service{cfg: Config{}}
	if _, _, err := s.returnURLs(""); ledger.ErrorCode(err) != ledger.EConflict || !strings.Contains(ledger.ErrorMessage(err), EnvPublicURL) {
		t.Fatalf("no base URL and no configured URLs must be a conflict naming %s: %v", EnvPublicURL, err)
	}
	ok, cancel, err := s.returnURLs("http://127.0.0.1:8080/")
	if err != nil || ok != "http://127.0.0.1:8080"+DefaultSuccessPath || cancel != "http://127.0.0.1:8080"+DefaultCancelPath {
		t.Fatalf("%s %s %v", ok, cancel, err)
	}
	s.cfg = Config{PublicURL: "https://app.example.com", CancelURL: "https://shop.example.com/cancel"}
	ok, cancel, err = s.returnURLs("http://internal:8080")
	if err != nil || ok != "https://app.example.com"+DefaultSuccessPath || cancel != "https://shop.example.com/cancel" {
		t.Fatalf("%s %s %v", ok, cancel, err)
	}
}
