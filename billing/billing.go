package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/internal/publicurl"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
)

// DisabledMessage is the error message while purchases are not configured.
const DisabledMessage = "purchases are not configured; ask support to add credits"

// Metadata keys creditd writes on Stripe objects. The Checkout Session
// carries the pack (metadata.pack) and the account (client_reference_id);
// its PaymentIntent carries both as metadata, which Stripe copies onto the
// charge, so a charge.refunded event names them too. Subscriptions name
// their account with metadata.account_id.
const (
	MetadataPack    = "pack"
	MetadataAccount = "account_id"
)

// Limits of the Stripe client and of request bodies.
const (
	// stripeTimeout bounds one call to Stripe, and stripeRetries the retries
	// of a failed one: a webhook that needs a call still answers well within
	// Stripe's own delivery timeout.
	stripeTimeout = 10 * time.Second
	stripeRetries = 1
	// checkoutBodyBytesMax bounds the body of POST …/checkout.
	checkoutBodyBytesMax = 4 << 10
)

// Service sells credit packs through Stripe Checkout and applies Stripe's
// webhooks to the ledger. It is safe for concurrent use.
type Service struct {
	cfg   Config
	eng   *engine.Engine
	store ledger.Store
	log   *slog.Logger
	sc    *stripe.Client // nil while purchases are disabled
	packs map[string]Pack
	paid  map[string]bool
}

// New builds the service. With no Stripe keys in cfg purchases are
// disabled: Checkout and the webhook answer 503 with DisabledMessage.
func New(cfg Config, eng *engine.Engine, store ledger.Store, log *slog.Logger) (*Service, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.validFor(eng.Config()); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Service{cfg: cfg, eng: eng, store: store, log: log.With("component", "billing"),
		packs: map[string]Pack{}, paid: map[string]bool{}}
	for _, p := range cfg.Packs {
		s.packs[p.ID] = p
	}
	for _, id := range cfg.PaidPriceIDs {
		s.paid[id] = true
	}
	if cfg.SecretKey != "" {
		bc := &stripe.BackendConfig{
			HTTPClient:        &http.Client{Timeout: stripeTimeout},
			LeveledLogger:     stripeLogger{s.log},
			MaxNetworkRetries: stripe.Int64(stripeRetries),
		}
		if cfg.APIBase != "" {
			bc.URL = stripe.String(strings.TrimRight(cfg.APIBase, "/"))
		}
		s.sc = stripe.NewClient(cfg.SecretKey, stripe.WithBackends(stripe.NewBackendsWithConfig(bc)))
	}
	return s, nil
}

// Enabled reports whether purchases are configured.
func (s *Service) Enabled() bool { return s.sc != nil }

// Packs returns the packs for sale, in configuration order.
func (s *Service) Packs() []Pack {
	out := make([]Pack, len(s.cfg.Packs))
	copy(out, s.cfg.Packs)
	return out
}

// Pack returns the pack with an id.
func (s *Service) Pack(id string) (Pack, bool) {
	p, ok := s.packs[id]
	return p, ok
}

func errDisabled() error { return ledger.Errorf(ledger.EUnavailable, DisabledMessage) }

// Checkout creates a Stripe Checkout Session for one pack for an account
// and returns the URL to send the user to and the session id. Success and
// cancel URLs come from the configuration (SuccessURL/CancelURL, or the
// defaults under PublicURL).
func (s *Service) Checkout(ctx context.Context, accountID, packID string) (url, sessionID string, err error) {
	return s.CheckoutFrom(ctx, accountID, packID, "")
}

// CheckoutFrom is Checkout with the base URL users reached creditd at
// (scheme://host, from RequestBaseURL; "" when unknown), used for the
// default return URLs when no PublicURL is configured.
func (s *Service) CheckoutFrom(ctx context.Context, accountID, packID, baseURL string) (url, sessionID string, err error) {
	if !s.Enabled() {
		return "", "", errDisabled()
	}
	p, ok := s.packs[packID]
	if !ok {
		return "", "", ledger.Errorf(ledger.EInvalid, "unknown pack %q; choose one of: %s", packID, strings.Join(s.packIDs(), ", "))
	}
	if _, err := s.eng.GetAccount(ctx, accountID); err != nil {
		return "", "", err
	}
	success, cancel, err := s.returnURLs(baseURL)
	if err != nil {
		return "", "", err
	}
	params := &stripe.CheckoutSessionCreateParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModePayment)),
		ClientReferenceID: stripe.String(accountID),
		SuccessURL:        stripe.String(success),
		CancelURL:         stripe.String(cancel),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{
			Quantity: stripe.Int64(1),
			PriceData: &stripe.CheckoutSessionCreateLineItemPriceDataParams{
				Currency:   stripe.String(p.Currency),
				UnitAmount: stripe.Int64(p.AmountMinor),
				ProductData: &stripe.CheckoutSessionCreateLineItemPriceDataProductDataParams{
					Name:        stripe.String(p.Name),
					Description: stripe.String(fmt.Sprintf("%d credits", p.Credits)),
				},
			},
		}},
		Metadata: map[string]string{MetadataPack: p.ID},
		PaymentIntentData: &stripe.CheckoutSessionCreatePaymentIntentDataParams{
			Metadata: map[string]string{MetadataPack: p.ID, MetadataAccount: accountID},
		},
	}
	sess, err := s.sc.V1CheckoutSessions.Create(ctx, params)
	if err != nil {
		return "", "", s.stripeError("create checkout session", err)
	}
	s.log.Info("checkout session created", "account", accountID, "pack", p.ID, "session", sess.ID)
	return sess.URL, sess.ID, nil
}

func (s *Service) packIDs() []string {
	ids := make([]string, len(s.cfg.Packs))
	for i, p := range s.cfg.Packs {
		ids[i] = p.ID
	}
	return ids
}

func (s *Service) returnURLs(baseURL string) (success, cancel string, err error) {
	if s.cfg.PublicURL != "" {
		baseURL = s.cfg.PublicURL
	}
	baseURL = strings.TrimRight(baseURL, "/")
	success, cancel = s.cfg.SuccessURL, s.cfg.CancelURL
	if (success == "" || cancel == "") && baseURL == "" {
		return "", "", ledger.Errorf(ledger.EConflict,
			"checkout return URLs need the address users reach this server at: set %s (or %s and %s)", EnvPublicURL, EnvSuccessURL, EnvCancelURL)
	}
	if success == "" {
		success = baseURL + DefaultSuccessPath
	}
	if cancel == "" {
		cancel = baseURL + DefaultCancelPath
	}
	return success, cancel, nil
}

// stripeError turns a failed Stripe call into a user-facing error: Stripe
// being unreachable or failing is "unavailable" (retry later); Stripe
// refusing our request is a configuration problem (internal, logged).
func (s *Service) stripeError(what string, err error) error {
	var se *stripe.Error
	if errors.As(err, &se) && se.HTTPStatusCode >= 400 && se.HTTPStatusCode < 500 && se.HTTPStatusCode != http.StatusTooManyRequests {
		s.log.Error("stripe refused a request", "op", what, "status", se.HTTPStatusCode, "code", se.Code, "err", se.Msg)
		return fmt.Errorf("stripe %s: %w", what, err)
	}
	s.log.Warn("stripe unavailable", "op", what, "err", err)
	return ledger.Errorf(ledger.EUnavailable, "the payment provider is unavailable; try again shortly")
}

// CheckoutStatus says whether a checkout session has been credited yet.
type CheckoutStatus struct {
	SessionID string `json:"session_id"`
	Credited  bool   `json:"credited"`
	Credits   int64  `json:"credits"`
	GrantID   string `json:"grant_id,omitempty"`
}

// Status reports whether the purchase of a checkout session has reached the
// account (for the success page). It looks at the account's live buckets,
// so a purchase already spent in full or refunded reads as not credited.
func (s *Service) Status(ctx context.Context, accountID, sessionID string) (CheckoutStatus, error) {
	out := CheckoutStatus{SessionID: sessionID}
	if _, err := s.eng.GetAccount(ctx, accountID); err != nil {
		return out, err
	}
	st, err := s.store.LoadState(ctx, accountID)
	if err != nil {
		return out, err
	}
	for _, g := range st.Grants {
		if g.Source == ledger.SourcePurchase && g.Reference == sessionID {
			out.Credited, out.Credits, out.GrantID = true, g.AmountCredits, g.ID
		}
	}
	return out, nil
}

// --- HTTP ---

// Route is one HTTP route of the service, for the API server to mount.
type Route struct {
	Pattern string // net/http ServeMux pattern
	// Auth: "public" (no credentials; the webhook checks its signature),
	// "user" (admin key or any user token), "own" (admin key, or the user
	// token of the account named by {id}).
	Auth    string
	Handler http.HandlerFunc
}

// Routes lists the service's HTTP routes.
func (s *Service) Routes() []Route {
	return []Route{
		{Pattern: "GET /v1/packs", Auth: "user", Handler: s.HandlePacks},
		{Pattern: "POST /v1/accounts/{id}/checkout", Auth: "own", Handler: s.HandleCheckout},
		{Pattern: "POST /v1/webhooks/stripe", Auth: "public", Handler: s.HandleWebhook},
	}
}

// packJSON is a pack as the API shows it.
type packJSON struct {
	Pack
	Price string `json:"price"`
}

// HandlePacks serves GET /v1/packs:
// {"object":"list","data":[{"id","name","credits","amount","currency","price"}],
// "purchases_enabled":bool,"message"?}.
func (s *Service) HandlePacks(w http.ResponseWriter, r *http.Request) {
	data := make([]packJSON, 0, len(s.cfg.Packs))
	for _, p := range s.cfg.Packs {
		data = append(data, packJSON{Pack: p, Price: p.Price()})
	}
	body := map[string]any{"object": "list", "data": data, "has_more": false, "purchases_enabled": s.Enabled()}
	if !s.Enabled() {
		body["message"] = DisabledMessage
	}
	writeJSON(w, http.StatusOK, body)
}

// HandleCheckout serves POST /v1/accounts/{id}/checkout {"pack"}: 201
// {"url","session_id"}. The caller has checked that the principal may act
// for the account {id}.
func (s *Service) HandleCheckout(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Pack string `json:"pack"`
	}
	if err := decodeJSON(w, r, checkoutBodyBytesMax, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	if body.Pack == "" {
		s.writeError(w, r, ledger.Errorf(ledger.EInvalid, "pack is required; choose one of: %s", strings.Join(s.packIDs(), ", ")))
		return
	}
	url, id, err := s.CheckoutFrom(r.Context(), r.PathValue("id"), body.Pack, RequestBaseURL(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"url": url, "session_id": id})
}

// RequestBaseURL is scheme://host of a request (honouring a TLS proxy's
// X-Forwarded-Proto) when the request may name the server, and "" when it
// may not: only a request over a loopback connection to a loopback host
// may (see package publicurl), since anyone else chooses the Host header.
func RequestBaseURL(r *http.Request) string {
	base, err := publicurl.FromRequest(r)
	if err != nil {
		return ""
	}
	return base
}

func (s *Service) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := ledger.ErrorCode(err)
	status := app.Status(code)
	if status >= 500 {
		s.log.Error("billing request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": ledger.ErrorMessage(err)}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// readBody reads at most limit bytes of a request body.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, ledger.Errorf(ledger.ETooLarge, "request body is larger than %d bytes", limit)
		}
		return nil, ledger.Errorf(ledger.EInvalid, "could not read the request body")
	}
	return b, nil
}

// decodeJSON reads one JSON object: unknown fields, trailing data and
// strings that break the text rule (ledger.CheckJSON) are refused, as
// everywhere in the API.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	b, err := readBody(w, r, limit)
	if err != nil {
		return err
	}
	if err := ledger.CheckJSON("", b); err != nil {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return ledger.Errorf(ledger.EInvalid, "invalid JSON body: %v", err)
	}
	if dec.More() {
		return ledger.Errorf(ledger.EInvalid, "invalid JSON body: trailing data")
	}
	return nil
}

// stripeLogger sends stripe-go's log lines to slog; its routine request
// lines are debug.
type stripeLogger struct{ l *slog.Logger }

func (l stripeLogger) Debugf(f string, v ...any) { l.l.Debug("stripe: " + fmt.Sprintf(f, v...)) }
func (l stripeLogger) Infof(f string, v ...any)  { l.l.Debug("stripe: " + fmt.Sprintf(f, v...)) }
func (l stripeLogger) Warnf(f string, v ...any)  { l.l.Warn("stripe: " + fmt.Sprintf(f, v...)) }
func (l stripeLogger) Errorf(f string, v ...any) { l.l.Warn("stripe: " + fmt.Sprintf(f, v...)) }
