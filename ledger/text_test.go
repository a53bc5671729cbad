package ledger_test

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/creditd/creditd/ledger"
)

func TestCheckText(t *testing.T) {
	for _, c := range []struct {
		name, s string
		max     int
		want    string // "" for no error
	}{
		{"Plain", "hello", 10, ""},
		{"Multibyte", "grüße 🎨", 20, ""},
		{"Empty", "", 10, ""},
		{"AtLimit", "abcde", 5, ""},
		{"OverLimit", "abcdef", 5, "prompt must be at most 5 bytes"},
		{"NoLimit", strings.Repeat("x", 1<<16), 0, ""},
		{"InvalidByte", "a\xffb", 10, "prompt must be valid UTF-8 without NUL bytes"},
		{"TruncatedRune", "\xe2\x82", 10, "prompt must be valid UTF-8 without NUL bytes"},
		{"Surrogate", "\xed\xa0\x80", 10, "prompt must be valid UTF-8 without NUL bytes"},
		{"NUL", "a\x00b", 10, "prompt must be valid UTF-8 without NUL bytes"},
		{"BadBytesBeforeLength", "\xff" + strings.Repeat("x", 20), 5, "prompt must be valid UTF-8 without NUL bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := ledger.CheckText("prompt", c.s, c.max)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("got %v, want no error", err)
			case c.want != "" && (ledger.ErrorCode(err) != ledger.EInvalid || ledger.ErrorMessage(err) != c.want):
				t.Fatalf("got %v, want invalid_request %q", err, c.want)
			}
		})
	}
}

func TestCheckID(t *testing.T) {
	for _, c := range []struct {
		s    string
		want string
	}{
		{"cs_test_a1.b:c-d", ""},
		{"x\x00y", "reference must be valid UTF-8 without NUL bytes"},
		{"\xff", "reference must be valid UTF-8 without NUL bytes"},
		{"a b", "reference must be 1-255 characters of letters, digits, '_', '-', '.', ':'"},
		{"", "reference must be 1-255 characters of letters, digits, '_', '-', '.', ':'"},
		{strings.Repeat("r", 256), "reference must be 1-255 characters of letters, digits, '_', '-', '.', ':'"},
	} {
		err := ledger.CheckReference(c.s)
		if got := ""; err != nil {
			got = ledger.ErrorMessage(err)
			if got != c.want {
				t.Errorf("CheckReference(%q) = %q, want %q", c.s, got, c.want)
			}
		} else if c.want != "" {
			t.Errorf("CheckReference(%q) passed, want %q", c.s, c.want)
		}
	}
}

// CheckJSON reads the raw bytes, so it sees what encoding/json would hide
// (invalid UTF-8 becomes U+FFFD) and what it would decode to NUL
// (\u0000), and names the string by its path.
func TestCheckJSON(t *testing.T) {
	for _, c := range []struct {
		name, field, raw string
		want             string // "" for no error
	}{
		{"Plain", "", `{"a":"x","b":[1,true,null,{"c":"d"}]}`, ""},
		{"EscapesThatAreFine", "", `{"a":"tab\tquote\" slash\\u0000 \u00e9 \ud83c\udfa8 \ud800"}`, ""},
		{"RawInvalidValue", "", "{\"action\":\"generate\",\"params\":{\"prompt\":\"\xff\"}}", "params.prompt must be valid UTF-8 without NUL bytes"},
		{"NULEscape", "", `{"account_id":"x\u0000y"}`, "account_id must be valid UTF-8 without NUL bytes"},
		{"NULEscapeUnderField", "params", `{"style":{"list":["ok","\u0000"]}}`, "params.style.list[1] must be valid UTF-8 without NUL bytes"},
		{"BadMemberName", "params", "{\"ok\":{\"\xff\":1}}", "a member name in params.ok must be valid UTF-8 without NUL bytes"},
		{"NULMemberName", "", `{"a\u0000":1}`, "a member name must be valid UTF-8 without NUL bytes"},
		{"EscapedNameInPath", "", `{"p\u0072ompt":"\u0000"}`, "prompt must be valid UTF-8 without NUL bytes"},
		{"TopLevelString", "", "\"\xff\"", "the request body must be valid UTF-8 without NUL bytes"},
		{"RawNULInString", "", "{\"a\":\"x\x00\"}", "a must be valid UTF-8 without NUL bytes"},
		{"MalformedButClean", "", `{"a":`, ""},
		{"MalformedAndBad", "", "{\"a\" \"\xff\"}", "the request body must be valid UTF-8 without NUL bytes"},
		{"BadByteOutsideStrings", "", "{\"a\":1\xff}", "the request body must be valid UTF-8 without NUL bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := ledger.CheckJSON(c.field, []byte(c.raw))
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("got %v, want no error", err)
			case c.want != "" && (ledger.ErrorCode(err) != ledger.EInvalid || ledger.ErrorMessage(err) != c.want):
				t.Fatalf("got %v, want invalid_request %q", err, c.want)
			}
			// Whatever passes decodes to strings that keep the rule.
			var v any
			if err == nil && json.Unmarshal([]byte(c.raw), &v) == nil && !keepsRule(v) {
				t.Fatalf("passed a text that decodes to bad text: %q", c.raw)
			}
		})
	}
}

// keepsRule reports whether every string of a decoded JSON value, member
// names included, keeps the text rule.
func keepsRule(v any) bool {
	switch x := v.(type) {
	case string:
		return ledger.CheckText("s", x, 0) == nil
	case []any:
		for _, e := range x {
			if !keepsRule(e) {
				return false
			}
		}
	case map[string]any:
		for k, e := range x {
			if !keepsRule(k) || !keepsRule(e) {
				return false
			}
		}
	}
	return true
}

// CleanText cuts at a character boundary, never inside one, and makes
// any text keep the rule.
func TestCleanText(t *testing.T) {
	for _, c := range []struct {
		s    string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"},  // é is 2 bytes: not cut in half
		{"a🎨", 4, "a"},  // 4-byte rune
		{"a🎨", 5, "a🎨"}, // fits
		{"a\x00b", 10, "ab"},
		{"a\xffb", 10, "a\uFFFDb"},
	} {
		got := ledger.CleanText(c.s, c.max)
		if got != c.want || ledger.CheckText("s", got, c.max) != nil {
			t.Errorf("CleanText(%q, %d) = %q, want %q", c.s, c.max, got, c.want)
		}
	}
	long := strings.Repeat("é", ledger.JobErrorBytesMax) // 2 bytes each
	if got := ledger.CleanText("x"+long, ledger.JobErrorBytesMax); len(got) != ledger.JobErrorBytesMax-1 || !utf8.ValidString(got) {
		t.Fatalf("cut to %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}

// Whatever CheckJSON passes and encoding/json decodes is valid UTF-8 and
// decodes to strings without NUL; whatever it refuses does not (or is not
// JSON).
func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{`{"a":"b"}`, `{"a":"\u0000"}`, "{\"a\":\"\xff\"}", `["\\u0000"]`, `{"a\u0000":1}`, `{"a":[{"b":"\ud800"}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		err := ledger.CheckJSON("", raw)
		var v any
		if json.Unmarshal(raw, &v) != nil {
			return
		}
		if ok := utf8.Valid(raw) && keepsRule(v); ok != (err == nil) {
			t.Fatalf("CheckJSON(%q) = %v, but the text keeps the rule: %v", raw, err, ok)
		}
	})
}

// BenchmarkCheckJSON is the text rule's cost on bodies that keep it: a
// hot route's (no escapes) and a prompt's with escapes, which are scanned
// for \u0000. Only a body that breaks the rule is walked.
func BenchmarkCheckJSON(b *testing.B) {
	for name, body := range map[string]string{
		"HoldBody":      `{"account_id":"acct_12345","action":"generate","quantity":1}`,
		"EscapedPrompt": `{"action":"generate","params":{"prompt":"a \"quoted\" cat\nin the snow","seed":42,"styles":["ink","wash"]}}`,
	} {
		b.Run(name, func(b *testing.B) {
			raw := []byte(body)
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if err := ledger.CheckJSON("", raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
