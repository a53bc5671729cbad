package httpapi

import "strconv"

// The hot routes' bodies are small flat objects such as
// {"account_id":"a1","action":"generate","quantity":1}. Decoding them with
// encoding/json's strict Decoder costs a decoder and its buffer per
// request, reflection, then a second scan for trailing data: a large share
// of the API's own CPU per request (docs/performance.md, Over HTTP). A
// body type that lists its members (fastBody) is first read by
// decodeFast, which accepts only a plain subset of JSON that encoding/json
// decodes to the same values: an object of members named exactly as the
// fields, each once, with strings of printable ASCII without escapes and
// integers without fraction or exponent that fit in int64. Anything else —
// other or differently cased names, escapes, null, nesting, a wrong type,
// trailing data, an empty body — makes decodeFast decline, and decode runs
// encoding/json, which also writes every error message. So the
// fast path changes how fast a body is read, never what it means.

// fastBody is a request body decodeFast can read.
type fastBody interface {
	fastFields() []fastField
}

// fastField is one member of a fastBody: exactly one of str or num is set.
type fastField struct {
	name string
	str  *string
	num  **int64
}

// fastFieldsMax bounds the members of a fastBody.
const fastFieldsMax = 8

// decodeFast reads body into fields and reports whether it could; when it
// cannot, it has changed nothing.
//
// Long: it is the hot routes' body decoder, one loop over the bytes with
// the values on the stack; split into a method per member it does the same
// allocations but takes clearly longer per body (BenchmarkDecodeHoldBody;
// docs/performance.md).
func decodeFast(body []byte, fields []fastField) bool {
	if len(fields) > fastFieldsMax {
		return false
	}
	var (
		strs [fastFieldsMax]string
		nums [fastFieldsMax]int64
		seen [fastFieldsMax]bool
	)
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return false
	}
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		i++
	} else {
		for {
			key, j, ok := plainString(body, i)
			if !ok {
				return false
			}
			f := -1
			for k := range fields {
				if fields[k].name == string(key) { // no copy: only compared
					f = k
					break
				}
			}
			if f < 0 || seen[f] {
				return false
			}
			seen[f] = true
			j = skipSpace(body, j)
			if j >= len(body) || body[j] != ':' {
				return false
			}
			j = skipSpace(body, j+1)
			if fields[f].str != nil {
				s, k, ok := plainString(body, j)
				if !ok {
					return false
				}
				strs[f], j = string(s), k
			} else {
				n, k, ok := plainInt(body, j)
				if !ok {
					return false
				}
				nums[f], j = n, k
			}
			j = skipSpace(body, j)
			if j >= len(body) {
				return false
			}
			if body[j] == '}' {
				i = j + 1
				break
			}
			if body[j] != ',' {
				return false
			}
			i = skipSpace(body, j+1)
		}
	}
	if skipSpace(body, i) != len(body) {
		return false
	}
	for k, f := range fields {
		switch {
		case !seen[k]:
		case f.str != nil:
			*f.str = strs[k]
		default:
			n := nums[k]
			*f.num = &n
		}
	}
	return true
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString reads a string of printable ASCII without escapes at b[i]
// and returns its contents (within b).
func plainString(b []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// plainInt reads an integer without fraction or exponent that fits in
// int64 at b[i] (JSON's grammar: no leading zeros, no plus sign).
func plainInt(b []byte, i int) (n int64, next int, ok bool) {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	start := j
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	switch {
	case j == start, b[start] == '0' && j > start+1:
		return 0, 0, false
	case j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E'):
		return 0, 0, false
	}
	n, err := strconv.ParseInt(string(b[i:j]), 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return n, j, true
}

func (in *holdBody) fastFields() []fastField {
	return []fastField{
		{name: "account_id", str: &in.AccountID},
		{name: "action", str: &in.Action},
		{name: "quantity", num: &in.Quantity},
		{name: "ttl_seconds", num: &in.TTLSeconds},
	}
}

func (in *captureBody) fastFields() []fastField {
	return []fastField{{name: "quantity", num: &in.Quantity}}
}

func (in *batchFields) fastFields() []fastField {
	return []fastField{
		{name: "op", str: &in.Op},
		{name: "idempotency_key", str: &in.IdempotencyKey},
	}
}

// batchReserve and batchCapture are the bodies of POST /v1/batch's
// reserve and capture operations.
type batchReserve struct {
	batchFields
	holdBody
}

func (in *batchReserve) fastFields() []fastField {
	return append(in.batchFields.fastFields(), in.holdBody.fastFields()...)
}

type batchCapture struct {
	batchFields
	holdRef
	captureBody
}

func (in *batchCapture) fastFields() []fastField {
	return append(append(in.batchFields.fastFields(), fastField{name: "hold_id", str: &in.HoldID}), in.captureBody.fastFields()...)
}

// plainOp reads the op of a POST /v1/batch operation whose members all
// have plain names and plain string or integer values, as batchOpName
// would read it with encoding/json: the value of the one member named
// "op" in any case. It declines (ok false) any other operation, one with
// no op, or one where two names fold to "op"; batchOpName then uses
// encoding/json.
func plainOp(raw []byte) (op string, ok bool) {
	var found []byte
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return "", false
	}
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return "", false
	}
	for {
		key, j, ok := plainString(raw, i)
		if !ok {
			return "", false
		}
		j = skipSpace(raw, j)
		if j >= len(raw) || raw[j] != ':' {
			return "", false
		}
		j = skipSpace(raw, j+1)
		isOp := len(key) == 2 && key[0]|0x20 == 'o' && key[1]|0x20 == 'p'
		if s, k, ok := plainString(raw, j); ok {
			if isOp {
				if found != nil {
					return "", false
				}
				found = s
			}
			j = k
		} else if _, k, ok := plainInt(raw, j); ok && !isOp {
			j = k
		} else {
			return "", false
		}
		j = skipSpace(raw, j)
		if j >= len(raw) {
			return "", false
		}
		if raw[j] == '}' {
			i = j + 1
			break
		}
		if raw[j] != ',' {
			return "", false
		}
		i = skipSpace(raw, j+1)
	}
	if found == nil || skipSpace(raw, i) != len(raw) {
		return "", false
	}
	return string(found), true
}
