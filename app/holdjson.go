package app

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/creditd/creditd/ledger"
)

// Every reserve and capture answers with a hold, so rendering it is on the
// hot path; through encoding/json it costs reflection, then
// Hold.MarshalJSON's second pass and the compaction of its output (the
// share of the server's CPU is in docs/performance.md, Over HTTP).
// holdJSON writes the same bytes as json.Marshal(h) directly;
// TestHoldJSONMatchesEncodingJSON holds it to that. Anything it does not
// render by hand (non-ASCII or escaped strings, times outside UTC or years
// 0–9999) goes through encoding/json, so the output stays identical
// whatever the input.

// holdJSONBytesHint is the capacity holdJSON allocates: a typical hold with
// one or two portions fits, so the body is one allocation.
const holdJSONBytesHint = 512

// holdJSON renders h exactly as json.Marshal(h) does.
func holdJSON(h *ledger.Hold) ([]byte, error) {
	b := make([]byte, 0, holdJSONBytesHint)
	b = append(b, `{"id":`...)
	b = appendJSONString(b, h.ID)
	b = append(b, `,"account_id":`...)
	b = appendJSONString(b, h.AccountID)
	b = append(b, `,"action":`...)
	b = appendJSONString(b, h.Action)
	b = append(b, `,"category":`...)
	b = appendJSONString(b, string(h.Category))
	b = append(b, `,"quantity":`...)
	b = strconv.AppendInt(b, h.Quantity, 10)
	b = append(b, `,"unit_price":`...)
	b = strconv.AppendInt(b, h.UnitPriceCredits, 10)
	b = append(b, `,"amount":`...)
	b = strconv.AppendInt(b, h.AmountCredits, 10)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, string(h.Status))
	b = append(b, `,"portions":`...)
	if h.Portions == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, p := range h.Portions {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"grant_id":`...)
			b = appendJSONString(b, p.GrantID)
			b = append(b, `,"credits":`...)
			b = strconv.AppendInt(b, p.Credits, 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	var err error
	b = append(b, `,"created_at":`...)
	if b, err = appendJSONTime(b, h.CreatedAt); err != nil {
		return nil, err
	}
	b = append(b, `,"expires_at":`...)
	if b, err = appendJSONTime(b, h.ExpiresAt); err != nil {
		return nil, err
	}
	b = append(b, `,"captured_quantity":`...)
	b = strconv.AppendInt(b, h.CapturedQuantity, 10)
	b = append(b, `,"captured_amount":`...)
	b = strconv.AppendInt(b, h.CapturedCredits, 10)
	if h.ReleaseReason != "" {
		b = append(b, `,"release_reason":`...)
		b = appendJSONString(b, h.ReleaseReason)
	}
	b = append(b, `,"resolved_at":`...)
	if h.ResolvedAt.IsZero() {
		b = append(b, "null"...)
	} else if b, err = appendJSONTime(b, h.ResolvedAt); err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// mustHoldJSON is holdJSON for holds the engine returned, which always
// render (as mustJSON).
func mustHoldJSON(h *ledger.Hold) []byte {
	b, err := holdJSON(h)
	if err != nil {
		panic(err)
	}
	return b
}

// appendJSONString appends s as encoding/json writes a string. Printable
// ASCII other than the characters it escapes (", \, and <, > and & for
// HTML) is copied; any other string is left to encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONTime appends t as time.Time.MarshalJSON does (RFC 3339 with
// nanoseconds, in quotes). UTC times of years 0–9999 are formatted here;
// others through MarshalJSON, which also reports the ones JSON cannot
// carry.
func appendJSONTime(b []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); t.Location() != time.UTC || y < 0 || y > 9999 {
		q, err := t.MarshalJSON()
		if err != nil {
			return nil, err
		}
		return append(b, q...), nil
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}
