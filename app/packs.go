package app

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/currency"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Credit packs are sold by package billing (Stripe Checkout) and offered
// by the web app; the types they share are here.

// Pack is a credit pack users can buy: Credits for AmountMinor (in the
// currency's minor unit, e.g. cents) of Currency (ISO 4217, lower case).
type Pack struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Credits     int64  `json:"credits"`
	AmountMinor int64  `json:"amount"`
	Currency    string `json:"currency"`
}

// Price renders the pack's price for people in English: the currency's
// symbol and the amount with its decimals, e.g. "$5.00", "€1,250.00",
// "¥500", or the upper-case code where the currency has no symbol of its
// own ("CHF 5.00"). The decimals are Stripe's (amounts are in the
// currency's minor unit as Stripe counts it).
func (p Pack) Price() string {
	return formatMoney(p.AmountMinor, p.Currency)
}

// formatMoney renders amountMinor (>= 0) of currency (ISO 4217, any case).
func formatMoney(amountMinor int64, cur string) string {
	cur = strings.ToLower(cur)
	decimals := 2
	switch {
	case zeroDecimal[cur]:
		decimals = 0
	case threeDecimal[cur]:
		decimals = 3
	}
	unit := int64(1)
	for range decimals {
		unit *= 10
	}
	num := groupThousands(amountMinor / unit)
	if decimals > 0 {
		num += fmt.Sprintf(".%0*d", decimals, amountMinor%unit)
	}
	sym := strings.ToUpper(cur)
	if u, err := currency.ParseISO(cur); err == nil {
		sym = message.NewPrinter(language.AmericanEnglish).Sprint(currency.Symbol(u))
	}
	out := sym + num
	if last, _ := utf8.DecodeLastRuneInString(sym); unicode.IsLetter(last) {
		out = sym + " " + num // "CHF 5.00", not "CHF5.00"
	}
	return out
}

// groupThousands writes n with commas between thousands.
func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// zeroDecimal are Stripe's zero-decimal currencies: amounts are whole units.
var zeroDecimal = map[string]bool{
	"bif": true, "clp": true, "djf": true, "gnf": true, "jpy": true, "kmf": true, "krw": true, "mga": true,
	"pyg": true, "rwf": true, "ugx": true, "vnd": true, "vuv": true, "xaf": true, "xof": true, "xpf": true,
}

// threeDecimal are Stripe's three-decimal currencies: amounts are
// thousandths.
var threeDecimal = map[string]bool{"bhd": true, "jod": true, "kwd": true, "omr": true, "tnd": true}

// CheckoutStatus says whether a checkout session has been credited yet.
type CheckoutStatus struct {
	SessionID string `json:"session_id"`
	Credited  bool   `json:"credited"`
	Credits   int64  `json:"credits"`
	GrantID   string `json:"grant_id,omitempty"`
}
