package billing

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/internal/publicurl"
	"github.com/creditd/creditd/ledger"
)

// Environment variables read by LoadFromEnv. Flags registered by
// Config.RegisterFlags override them.
const (
	EnvSecretKey        = "CREDITD_STRIPE_SECRET_KEY"
	EnvWebhookSecret    = "CREDITD_STRIPE_WEBHOOK_SECRET"
	EnvAPIBase          = "CREDITD_STRIPE_API_BASE"
	EnvSuccessURL       = "CREDITD_STRIPE_SUCCESS_URL"
	EnvCancelURL        = "CREDITD_STRIPE_CANCEL_URL"
	EnvPaidPriceIDs     = "CREDITD_STRIPE_PAID_PRICE_IDS"
	EnvWebhookTolerance = "CREDITD_STRIPE_WEBHOOK_TOLERANCE"
	EnvPacks            = "CREDITD_PACKS"
	EnvPublicURL        = publicurl.Env
)

// Defaults.
const (
	// DefaultWebhookTolerance is how far a signed webhook's time may be
	// from now (stripe-go's own default, five minutes).
	DefaultWebhookTolerance = webhook.DefaultTolerance
	// DefaultSuccessPath and DefaultCancelPath are where Stripe Checkout
	// sends the user back when no URL is configured, relative to the public
	// URL. {CHECKOUT_SESSION_ID} is filled in by Stripe.
	DefaultSuccessPath = "/app/settings/account/billing?checkout=success&session_id={CHECKOUT_SESSION_ID}"
	DefaultCancelPath  = "/app/settings/account/billing/add-credits?checkout=cancelled"
)

// Bounds of the configuration.
const (
	packCreditsMax = 10_000_000
	packAmountMax  = 99_999_999 // Stripe's limit for unit_amount (minor units)
	packsMax       = 20
	packNameMax    = 100
)

// Pack is a credit pack users can buy (app.Pack: the web app shows them
// without importing billing).
type Pack = app.Pack

// DefaultPacks are the packs sold when none are configured.
func DefaultPacks() []Pack {
	return []Pack{
		{ID: "small", Name: "100 credits", Credits: 100, AmountMinor: 500, Currency: "usd"},
		{ID: "large", Name: "500 credits", Credits: 500, AmountMinor: 2000, Currency: "usd"},
	}
}

// Config configures purchases through Stripe. With no SecretKey and no
// WebhookSecret purchases are disabled (admin grants still work); setting
// only one of the two is an error.
type Config struct {
	// SecretKey is the Stripe API key (sk_… or rk_…).
	SecretKey string
	// WebhookSecret is the signing secret of the webhook endpoint (whsec_…).
	WebhookSecret string
	// APIBase overrides Stripe's API URL (tests point it at stripe-mock).
	APIBase string
	// PublicURL is where users reach creditd; the default success and
	// cancel URLs are built from it. Empty: from the request's Host, for
	// loopback requests only (see package publicurl); others are refused.
	PublicURL string
	// SuccessURL and CancelURL override where Checkout returns the user.
	// {CHECKOUT_SESSION_ID} in SuccessURL is filled in by Stripe.
	SuccessURL string
	CancelURL  string
	// Packs are the credit packs for sale (DefaultPacks when empty).
	Packs []Pack
	// PaidPriceIDs are the Stripe price ids whose active (or trialing)
	// subscriptions put an account on the paid plan.
	PaidPriceIDs []string
	// WebhookTolerance is how far a webhook's signature timestamp may be
	// from now, in the past or in the future.
	WebhookTolerance time.Duration
}

// DefaultConfig is purchases disabled, the default packs and tolerance.
func DefaultConfig() Config {
	return Config{Packs: DefaultPacks(), WebhookTolerance: DefaultWebhookTolerance}
}

// LoadFromEnv returns DefaultConfig with the CREDITD_STRIPE_* variables,
// CREDITD_PACKS and CREDITD_PUBLIC_URL applied, validated.
func LoadFromEnv() (Config, error) {
	return loadFromEnv(os.Getenv)
}

func loadFromEnv(getenv func(string) string) (Config, error) {
	c := DefaultConfig()
	if err := c.applyEnv(getenv); err != nil {
		return c, err
	}
	return c, c.Validate()
}

func (c *Config) applyEnv(getenv func(string) string) error {
	set := func(dst *string, name string) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			*dst = v
		}
	}
	set(&c.SecretKey, EnvSecretKey)
	set(&c.WebhookSecret, EnvWebhookSecret)
	set(&c.APIBase, EnvAPIBase)
	set(&c.PublicURL, EnvPublicURL)
	set(&c.SuccessURL, EnvSuccessURL)
	set(&c.CancelURL, EnvCancelURL)
	if v := getenv(EnvPaidPriceIDs); v != "" {
		c.PaidPriceIDs = splitList(v)
	}
	if v := getenv(EnvWebhookTolerance); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%s: %w", EnvWebhookTolerance, err)
		}
		c.WebhookTolerance = d
	}
	if v := getenv(EnvPacks); v != "" {
		packs, err := ParsePacks(v)
		if err != nil {
			return fmt.Errorf("%s: %w", EnvPacks, err)
		}
		c.Packs = packs
	}
	return nil
}

// ParsePacks reads packs from JSON:
// [{"id":"small","name":"100 credits","credits":100,"amount":500,"currency":"usd"}, …]
func ParsePacks(s string) ([]Pack, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	var packs []Pack
	if err := dec.Decode(&packs); err != nil {
		return nil, fmt.Errorf("packs must be a JSON array of {id, name, credits, amount, currency}: %w", err)
	}
	if dec.More() {
		return nil, errors.New("packs: trailing data after the JSON array")
	}
	return packs, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// RegisterFlags adds --stripe-* and --packs flags to fs, defaulting to c's
// current values (so flags override the environment). Secrets are better
// passed in the environment than on a command line.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.SecretKey, "stripe-secret-key", c.SecretKey, "Stripe secret API key (or "+EnvSecretKey+"); empty disables purchases")
	fs.StringVar(&c.WebhookSecret, "stripe-webhook-secret", c.WebhookSecret, "Stripe webhook signing secret (or "+EnvWebhookSecret+")")
	fs.StringVar(&c.APIBase, "stripe-api-base", c.APIBase, "Stripe API base URL, e.g. a local stripe-mock (or "+EnvAPIBase+")")
	fs.StringVar(&c.SuccessURL, "stripe-success-url", c.SuccessURL, "where Checkout returns after payment (or "+EnvSuccessURL+")")
	fs.StringVar(&c.CancelURL, "stripe-cancel-url", c.CancelURL, "where Checkout returns when cancelled (or "+EnvCancelURL+")")
	fs.DurationVar(&c.WebhookTolerance, "stripe-webhook-tolerance", c.WebhookTolerance, "how far a webhook signature's time may be from now, past or future (or "+EnvWebhookTolerance+")")
	fs.Func("stripe-paid-price-ids", "comma-separated Stripe price ids of the paid plan (or "+EnvPaidPriceIDs+")", func(s string) error {
		c.PaidPriceIDs = splitList(s)
		return nil
	})
	fs.Func("packs", `credit packs as JSON, e.g. [{"id":"small","name":"100 credits","credits":100,"amount":500,"currency":"usd"}] (or `+EnvPacks+")", func(s string) error {
		p, err := ParsePacks(s)
		if err == nil {
			c.Packs = p
		}
		return err
	})
}

var (
	currencyPattern = regexp.MustCompile(`^[a-z]{3}$`)
	packIDPattern   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
)

// Validate checks the configuration.
func (c *Config) Validate() error {
	if (c.SecretKey == "") != (c.WebhookSecret == "") {
		return fmt.Errorf("set both %s and %s to enable purchases, or neither to disable them", EnvSecretKey, EnvWebhookSecret)
	}
	for _, u := range []struct{ name, v string }{{"stripe api base", c.APIBase}, {"public url", c.PublicURL}, {"stripe success url", c.SuccessURL}, {"stripe cancel url", c.CancelURL}} {
		if u.v == "" {
			continue
		}
		p, err := url.Parse(u.v)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("%s %q must be an absolute http(s) URL", u.name, u.v)
		}
	}
	if c.WebhookTolerance <= 0 {
		return fmt.Errorf("stripe webhook tolerance must be positive, got %s", c.WebhookTolerance)
	}
	if len(c.Packs) > packsMax {
		return fmt.Errorf("configure at most %d credit packs", packsMax)
	}
	seen := map[string]bool{}
	for _, p := range c.Packs {
		switch {
		case !packIDPattern.MatchString(p.ID):
			return fmt.Errorf("pack id %q must be 1-32 of a-z, 0-9, '_', '-'", p.ID)
		case seen[p.ID]:
			return fmt.Errorf("pack id %q is configured twice", p.ID)
		case p.Name == "" || len(p.Name) > packNameMax:
			return fmt.Errorf("pack %q needs a name of at most %d bytes", p.ID, packNameMax)
		case p.Credits < 1 || p.Credits > packCreditsMax:
			return fmt.Errorf("pack %q: credits must be between 1 and %d", p.ID, packCreditsMax)
		case p.AmountMinor < 1 || p.AmountMinor > packAmountMax:
			return fmt.Errorf("pack %q: amount (in minor units) must be between 1 and %d", p.ID, packAmountMax)
		case !currencyPattern.MatchString(p.Currency):
			return fmt.Errorf("pack %q: currency must be a lower-case ISO code such as \"usd\"", p.ID)
		}
		seen[p.ID] = true
	}
	if slices.Contains(c.PaidPriceIDs, "") {
		return errors.New("empty stripe paid price id")
	}
	return nil
}

// withDefaults fills in what is left empty.
func (c Config) withDefaults() Config {
	if len(c.Packs) == 0 {
		c.Packs = DefaultPacks()
	}
	if c.WebhookTolerance == 0 {
		c.WebhookTolerance = DefaultWebhookTolerance
	}
	return c
}

// validFor checks a pack's credits against the ledger's grant bound.
func (c *Config) validFor(lc *ledger.Config) error {
	for _, p := range c.Packs {
		if p.Credits > lc.Limits.GrantCreditsMax {
			return fmt.Errorf("pack %q: %d credits exceed grant_credits_max %d", p.ID, p.Credits, lc.Limits.GrantCreditsMax)
		}
	}
	return nil
}
