package ledger

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The text rule. Every string that creditd may store or look up — ids,
// references, job params (every member name and string value, however
// deep), prompts, error texts, reasons, time zones, idempotency keys,
// Stripe fields — is valid UTF-8 without NUL (U+0000) and within its
// documented length. PostgreSQL refuses other text, and with it the whole
// transaction that carries it (other requests' operations included);
// SQLite would store it and echo it back as invalid JSON. So the edges
// (package httpapi, billing and web) apply these checks before anything
// reaches the engine or a store, and a request that breaks the rule is
// 400 invalid_request naming the field.

const (
	// ReferenceBytesMax bounds a grant's reference, from the API or from
	// a Stripe event (its checkout session id). A reference is a grant's
	// idempotency key, so it has the default bound of one.
	ReferenceBytesMax = idempotencyKeyBytesMaxDefault
	// idempotencyKeyBytesMaxDefault is the default of
	// limits.idempotency_key_bytes_max.
	idempotencyKeyBytesMaxDefault = 255
	// TimezoneBytesMax bounds an IANA time zone name (the longest is about
	// 30 bytes).
	TimezoneBytesMax = 64
	// ResourceIDBytesMax bounds an id that names a hold, job, asset or
	// grant in a request. creditd makes these ids (NewID) 30 to 33 bytes
	// long, so a longer one cannot exist.
	ResourceIDBytesMax = 64
	// JobErrorBytesMax bounds a job's error message: a worker's longer
	// message is cut to it (at a character boundary).
	JobErrorBytesMax = 2048
)

// textRuleMessage ends the message of a string that breaks the rule.
const textRuleMessage = " must be valid UTF-8 without NUL bytes"

// textError is the invalid_request error of a field; its details name
// the field.
func textError(field, message string) *Error {
	return &Error{Code: EInvalid, Message: field + message, Details: map[string]any{"field": field}}
}

// CheckText checks a string against the text rule: valid UTF-8, no NUL,
// at most maxBytes bytes (maxBytes <= 0: no bound).
func CheckText(field, s string, maxBytes int) error {
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return textError(field, textRuleMessage)
	}
	if maxBytes > 0 && len(s) > maxBytes {
		return textError(field, " must be at most "+strconv.Itoa(maxBytes)+" bytes")
	}
	return nil
}

// CheckID checks a client-chosen id (an account id, a reference): the
// text rule, then 1 to maxBytes characters of letters, digits, '_', '-',
// '.' and ':', starting with a letter or digit (ValidID).
func CheckID(field, s string, maxBytes int) error {
	if err := CheckText(field, s, 0); err != nil {
		return err
	}
	if !ValidID(s, maxBytes) {
		return textError(field, " must be 1-"+strconv.Itoa(maxBytes)+" characters of letters, digits, '_', '-', '.', ':'")
	}
	return nil
}

// CheckReference checks a grant's reference (CheckID, ReferenceBytesMax).
func CheckReference(ref string) error { return CheckID("reference", ref, ReferenceBytesMax) }

// CleanText makes s fit the text rule: invalid bytes become U+FFFD, NUL
// bytes are dropped, and a string longer than maxBytes is cut at the last
// character boundary within it. It is for text creditd shortens or
// passes on itself (a worker's error message), never for input, which
// is refused instead.
func CleanText(s string, maxBytes int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if len(s) <= maxBytes {
		return s
	}
	cut := maxBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// CheckJSON checks every string of a JSON text — member names and
// values, at any depth — against the text rule, reading the raw bytes
// (encoding/json would turn invalid UTF-8 into U+FFFD, and decodes the
// escape \u0000 to NUL). The error names the first string that breaks
// it by its path under field ("params.prompt", "operations[2].reason";
// field "" is the request body). A text that is not well-formed JSON but
// keeps the rule passes: its decoder reports the syntax error.
func CheckJSON(field string, raw []byte) error {
	if !hasBadText(raw) {
		return nil
	}
	w := jsonWalker{b: raw}
	if err := w.value(field, 0); err != nil {
		return err
	}
	// Not well-formed where the walker stopped: the bad text is still
	// refused, without a path.
	if field == "" {
		field = "the request body"
	}
	return textError(field, textRuleMessage)
}

// hasBadText reports whether raw has invalid UTF-8, a NUL byte, or a
// \u0000 escape: a linear scan that may also flag a text the walker then
// finds well within the rule (a NUL escape outside any string is a
// syntax error either way).
func hasBadText(raw []byte) bool {
	if !utf8.Valid(raw) || bytes.IndexByte(raw, 0) >= 0 {
		return true
	}
	for i := bytes.IndexByte(raw, '\\'); i >= 0 && i+1 < len(raw); {
		if raw[i+1] == 'u' && bytes.HasPrefix(raw[i+2:], []byte("0000")) {
			return true
		}
		next := bytes.IndexByte(raw[i+2:], '\\')
		if next < 0 {
			break
		}
		i += 2 + next
	}
	return false
}

// jsonWalkDepthMax bounds the nesting the walker follows (encoding/json
// refuses deeper texts).
const jsonWalkDepthMax = 10000

// jsonWalker finds the first string of a JSON text that breaks the text
// rule. Where the text is not well-formed it stops and sets bad.
type jsonWalker struct {
	b   []byte
	i   int
	bad bool // the text is not well-formed at i
}

func (w *jsonWalker) space() {
	for w.i < len(w.b) && (w.b[w.i] == ' ' || w.b[w.i] == '\t' || w.b[w.i] == '\n' || w.b[w.i] == '\r') {
		w.i++
	}
}

// value walks one value at w.i; path names it in messages.
func (w *jsonWalker) value(path string, depth int) error {
	w.space()
	if w.i >= len(w.b) || depth > jsonWalkDepthMax {
		w.bad = true
		return nil
	}
	switch w.b[w.i] {
	case '{':
		return w.object(path, depth)
	case '[':
		return w.array(path, depth)
	case '"':
		if _, ok, good := w.str(); good && !ok {
			if path == "" {
				path = "the request body"
			}
			return textError(path, textRuleMessage)
		}
		return nil
	default: // a number or literal: up to the next delimiter
		for w.i < len(w.b) && !strings.ContainsRune(",:]} \t\r\n", rune(w.b[w.i])) {
			if w.b[w.i] == 0 || w.b[w.i] >= utf8.RuneSelf {
				w.bad = true
				return nil
			}
			w.i++
		}
		return nil
	}
}

func (w *jsonWalker) object(path string, depth int) error {
	w.i++ // '{'
	w.space()
	if w.i < len(w.b) && w.b[w.i] == '}' {
		w.i++
		return nil
	}
	for !w.bad {
		w.space()
		if w.i >= len(w.b) || w.b[w.i] != '"' {
			w.bad = true
			return nil
		}
		key, ok, good := w.str()
		if !good {
			return nil
		}
		if !ok {
			where := "a member name"
			if path != "" {
				where += " in " + path
			}
			return textError(where, textRuleMessage)
		}
		w.space()
		if w.i >= len(w.b) || w.b[w.i] != ':' {
			w.bad = true
			return nil
		}
		w.i++
		child := key
		if path != "" {
			child = path + "." + key
		}
		if err := w.value(child, depth+1); err != nil || w.bad {
			return err
		}
		w.space()
		switch {
		case w.i < len(w.b) && w.b[w.i] == ',':
			w.i++
		case w.i < len(w.b) && w.b[w.i] == '}':
			w.i++
			return nil
		default:
			w.bad = true
		}
	}
	return nil
}

func (w *jsonWalker) array(path string, depth int) error {
	w.i++ // '['
	w.space()
	if w.i < len(w.b) && w.b[w.i] == ']' {
		w.i++
		return nil
	}
	for n := 0; !w.bad; n++ {
		if err := w.value(path+"["+strconv.Itoa(n)+"]", depth+1); err != nil || w.bad {
			return err
		}
		w.space()
		switch {
		case w.i < len(w.b) && w.b[w.i] == ',':
			w.i++
		case w.i < len(w.b) && w.b[w.i] == ']':
			w.i++
			return nil
		default:
			w.bad = true
		}
	}
	return nil
}

// str reads the string at w.i (its opening quote). It returns the
// string as decoded (for paths), whether it keeps the text rule, and
// whether it is well-formed (else w.bad is set).
func (w *jsonWalker) str() (s string, ok, good bool) {
	start := w.i
	w.i++
	ok = true
	escaped := false
	for w.i < len(w.b) {
		c := w.b[w.i]
		switch {
		case c == '"':
			w.i++
			raw := w.b[start:w.i]
			if !ok {
				return "", false, true
			}
			if !escaped {
				return string(raw[1 : len(raw)-1]), true, true
			}
			if err := json.Unmarshal(raw, &s); err != nil {
				w.bad = true
				return "", false, false
			}
			return s, true, true
		case c == '\\':
			if w.i+1 >= len(w.b) {
				w.bad = true
				return "", false, false
			}
			escaped = true
			if w.b[w.i+1] == 'u' && bytes.HasPrefix(w.b[w.i+2:], []byte("0000")) {
				ok = false
			}
			w.i += 2
		case c < 0x20:
			// A raw control character (NUL among them) is a syntax
			// error; a NUL still names its string.
			if c != 0 {
				w.bad = true
				return "", false, false
			}
			ok = false
			w.i++
		case c < utf8.RuneSelf:
			w.i++
		default:
			r, size := utf8.DecodeRune(w.b[w.i:])
			if r == utf8.RuneError && size == 1 {
				ok = false
			}
			w.i += size
		}
	}
	w.bad = true
	return "", false, false
}
