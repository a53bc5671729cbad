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
	"github.com/creditd/creditd/internal/httpx"
	"github.com/creditd/creditd/internal/publicurl"
	"github.com/creditd/creditd/ledger"
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

// Ledger is what billing needs of the application layer (*app.Service):
// accounts and plans, grants with a reference and their refunds, and
// consume-once markers.
type Ledger interface {
	Config() *ledger.Config
	Account(ctx context.Context, id string) (ledger.Account, error)
	SetPlan(ctx context.Context, accountID string, plan ledger.Plan) (changed bool, err error)
	GrantOnce(ctx context.Context, accountID string, source ledger.Source, credits int64, reference string) (ledger.Grant, bool, error)
	GrantByReference(ctx context.Context, accountID string, source ledger.Source, reference string) (ledger.Grant, bool, error)
	Refund(ctx context.Context, accountID string, source ledger.Source, reference, reason string) (*app.RefundResult, error)
	ConsumeOnce(ctx context.Context, accountID, scope, key string) (first bool, err error)
	Consumed(ctx context.Context, scope, key string) (bool, error)
}

// Service sells credit packs through Stripe Checkout and applies Stripe's
// webhooks to the ledger. It is safe for concurrent use.
type Service struct {
	cfg   Config
	app   Ledger
	log   *slog.Logger
	sc    *stripe.Client // nil while purchases are disabled
	packs map[string]Pack
	paid  map[string]bool
}

// New builds the service. With no Stripe keys in cfg purchases are
// disabled: Checkout and the webhook answer 503 with DisabledMessage.
func New(cfg Config, l Ledger, log *slog.Logger) (*Service, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.validFor(l.Config()); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Service{cfg: cfg, app: l, log: log.With("component", "billing"),
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
// (scheme://host when the request may name the server, see package
// publicurl; "" when unknown), used for the default return URLs when no
// PublicURL is configured.
func (s *Service) CheckoutFrom(ctx context.Context, accountID, packID, baseURL string) (url, sessionID string, err error) {
	if !s.Enabled() {
		return "", "", errDisabled()
	}
	p, ok := s.packs[packID]
	if !ok {
		return "", "", ledger.Errorf(ledger.EInvalid, "unknown pack %q; choose one of: %s", packID, strings.Join(s.packIDs(), ", "))
	}
	if _, err := s.app.Account(ctx, accountID); err != nil {
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
type CheckoutStatus = app.CheckoutStatus

// Status reports whether the purchase of a checkout session has reached the
// account (for the success page). It looks at the account's live buckets,
// so a purchase already spent in full or refunded reads as not credited.
func (s *Service) Status(ctx context.Context, accountID, sessionID string) (CheckoutStatus, error) {
	out := CheckoutStatus{SessionID: sessionID}
	g, ok, err := s.app.GrantByReference(ctx, accountID, ledger.SourcePurchase, sessionID)
	if err != nil {
		return out, err
	}
	if ok {
		out.Credited, out.Credits, out.GrantID = true, g.AmountCredits, g.ID
	}
	return out, nil
}

// --- HTTP ---

// Routes lists the service's HTTP routes, for the API server to mount
// with its authentication (httpx.RouteProvider): the webhook is public
// (it checks its signature), the packs any user's, the checkout the
// account's own.
func (s *Service) Routes() []httpx.Route {
	return []httpx.Route{
		{Pattern: "GET /v1/packs", Auth: httpx.AuthUser, Handler: s.HandlePacks},
		{Pattern: "POST /v1/accounts/{id}/checkout", Auth: httpx.AuthOwn, Handler: s.HandleCheckout},
		{Pattern: "POST /v1/webhooks/stripe", Auth: httpx.AuthPublic, Handler: s.HandleWebhook},
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
	url, id, err := s.CheckoutFrom(r.Context(), r.PathValue("id"), body.Pack, requestBaseURL(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"url": url, "session_id": id})
}

// requestBaseURL is scheme://host of a request when the request may name
// the server (see package publicurl), and "" when it may not.
func requestBaseURL(r *http.Request) string {
	base, err := publicurl.FromRequest(r)
	if err != nil {
		return ""
	}
	return base
}

func (s *Service) writeError(w http.ResponseWriter, r *http.Request, err error) {
	httpx.WriteError(w, r, s.log, err)
}

func writeJSON(w http.ResponseWriter, status int, v any) { httpx.WriteJSON(w, status, v) }

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
