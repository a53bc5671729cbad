package httpapi

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/creditd/creditd/jobs"
	"github.com/creditd/creditd/ledger"
)

// fastDecodeBodies are bodies of every shape decodeFast reads or declines.
var fastDecodeBodies = []string{
	``, ` `, `{}`, ` { } `, "\t{\n}\r\n", `[]`, `null`, `"x"`, `1`, `{`, `}`, `{}{}`, `{} x`, `{},`,
	`{"account_id":"a1","action":"generate","quantity":1}`,
	`{"account_id":"a1","action":"generate"}`,
	` { "account_id" : "a1" , "action" : "generate" , "quantity" : 4 , "ttl_seconds" : 60 } `,
	`{"account_id":"a1","action":"generate","quantity":1,}`,
	`{"account_id":"a1",,"action":"generate"}`,
	`{"account_id":"a1" "action":"generate"}`,
	`{"account_id" "a1"}`,
	`{"account_id":"a1","action":"generate","quantity":1}x`,
	`{"account_id":"a1","action":"generate","quantity":1}{}`,
	`{"account_id":"a1","account_id":"a2"}`,
	`{"quantity":1,"quantity":2}`,
	`{"Account_ID":"a1"}`, `{"ACTION":"generate"}`, `{"Quantity":3}`, `{"quantity":1,"Quantity":2}`,
	`{"unknown":1}`, `{"account_id":"a1","extra":{"x":[1,2]}}`,
	`{"account_id":"a\u0031"}`, `{"account_id":"a\"b"}`, `{"account_id":"a\\b"}`, `{"account_id":"a\nb"}`,
	"{\"account_id\":\"a\nb\"}", "{\"account_id\":\"a\tb\"}", `{"account_id":"Jürgen"}`, "{\"account_id\":\"a\xffb\"}",
	`{"account_id":"a\u0000b"}`, "{\"account_id\":\"a\x00b\"}", "{\"account_id\":\"a\xc3\"}", `{"account_id":"a\\u0000b"}`,
	`{"account_id":"<&>"}`, `{"account_id":""}`, `{"action":"generate","account_id":null}`,
	`{"account_id":1}`, `{"account_id":true}`, `{"account_id":["a"]}`, `{"account_id":{"a":1}}`,
	`{"quantity":null}`, `{"quantity":"1"}`, `{"quantity":true}`, `{"quantity":[1]}`,
	`{"quantity":0}`, `{"quantity":-0}`, `{"quantity":-1}`, `{"quantity":01}`, `{"quantity":-01}`, `{"quantity":+1}`,
	`{"quantity":1.0}`, `{"quantity":1.5}`, `{"quantity":1e2}`, `{"quantity":1E2}`, `{"quantity":-}`, `{"quantity":--1}`,
	`{"quantity":9223372036854775807}`, `{"quantity":9223372036854775808}`,
	`{"quantity":-9223372036854775808}`, `{"quantity":-9223372036854775809}`,
	`{"quantity":1 }`, `{"quantity":1x}`, `{"quantity":}`, `{"quantity"}`, `{"quantity":1`, `{"quantity":`, `{"`, `{"a`,
	`{"ttl_seconds":600,"quantity":2,"action":"video","account_id":"acct_1"}`,
	`{"op":"reserve","account_id":"a","action":"generate"}`,
	`{"op":"reserve","idempotency_key":"k-1","account_id":"a","action":"generate","quantity":2}`,
	`{"op":"capture","hold_id":"hold_1","quantity":1}`,
	`{"op":"capture","hold_id":"hold_1","quantity":1,"idempotency_key":"k:2"}`,
	`{"op":"capture","hold_id":"hold_1"}`, `{"op":"capture","hold_id":"hold_1","quantity":1,"hold_id":"hold_2"}`,
	`{"op":"capture","Hold_Id":"hold_1","quantity":1}`, `{"op":"reserve","hold_id":"h"}`,
}

// TestDecodeFastMatchesEncodingJSON: decode (the text rule, then
// decodeFast first) leaves the same values and returns the same error as
// the text rule and encoding/json alone, for every hot body type and
// every kind of body.
func TestDecodeFastMatchesEncodingJSON(t *testing.T) {
	for _, body := range fastDecodeBodies {
		checkDecodeFast(t, body)
	}
}

func FuzzDecodeFast(f *testing.F) {
	for _, body := range fastDecodeBodies {
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body string) { checkDecodeFast(t, body) })
}

func checkDecodeFast(t *testing.T, body string) {
	t.Helper()
	for _, mk := range []func() fastBody{
		func() fastBody { return &holdBody{} },
		func() fastBody { return &captureBody{} },
		func() fastBody { return &batchReserve{} },
		func() fastBody { return &batchCapture{} },
	} {
		got, want := mk(), mk()
		gerr, werr := decode([]byte(body), got), ledger.CheckJSON("", []byte(body))
		if werr == nil {
			werr = decodeJSON([]byte(body), want)
		}
		if fmt.Sprint(gerr) != fmt.Sprint(werr) || !reflect.DeepEqual(got, want) {
			t.Fatalf("%T from %q:\ndecode:        %+v, %v\nencoding/json: %+v, %v", got, body, show(got), gerr, show(want), werr)
		}
	}
}

// show renders a body with its pointers' values.
func show(v any) string {
	rv := reflect.ValueOf(v).Elem()
	s := ""
	var walk func(reflect.Value)
	walk = func(rv reflect.Value) {
		for i := range rv.NumField() {
			switch f := rv.Field(i); {
			case f.Kind() == reflect.Struct:
				walk(f)
			case f.Kind() == reflect.Pointer && !f.IsNil():
				s += fmt.Sprintf(" %s=%v", rv.Type().Field(i).Name, f.Elem())
			default:
				s += fmt.Sprintf(" %s=%v", rv.Type().Field(i).Name, f)
			}
		}
	}
	walk(rv)
	return s
}

// TestDecodeFastReadsPlainBodies: the bodies the bench and typical clients
// send take the fast path.
func TestDecodeFastReadsPlainBodies(t *testing.T) {
	for body, in := range map[string]fastBody{
		`{"account_id":"a1","action":"generate","quantity":1}`:                 &holdBody{},
		` {"account_id": "a1", "action": "upscale", "ttl_seconds": 60}` + "\n": &holdBody{},
		`{"quantity":3}`: &captureBody{},
		`{}`:             &captureBody{},
		`{"op":"reserve","account_id":"a","action":"generate","idempotency_key":"k"}`: &batchReserve{},
		`{"op":"capture","hold_id":"hold_1","quantity":1}`:                            &batchCapture{},
	} {
		if !decodeFast([]byte(body), in.fastFields()) {
			t.Errorf("%T declined %s", in, body)
		}
	}
}

func BenchmarkDecodeHoldBody(b *testing.B) {
	body := []byte(`{"account_id":"a123","action":"generate","quantity":1}`)
	for name, fn := range map[string]func([]byte, any) error{"encoding/json": decodeJSON, "decode": decode} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var in holdBody
				if err := fn(body, &in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPlainOpMatchesEncodingJSON: whenever plainOp reads an op, it is the
// op encoding/json reads.
func TestPlainOpMatchesEncodingJSON(t *testing.T) {
	for _, raw := range append(fastDecodeBodies,
		`{"op":""}`, `{"OP":"reserve"}`, `{"Op":"reserve","op":"capture"}`, `{"op":1}`, `{"op":null}`,
		`{"account_id":"a","op":"reserve","quantity":-3}`, `{"oq":"reserve"}`, `{"o":"x","op":"grant"}`) {
		checkPlainOp(t, raw)
	}
	for _, raw := range []string{`{"op":"reserve","account_id":"a","action":"generate"}`, `{"hold_id":"h","quantity":1,"Op":"capture"}`} {
		if _, ok := plainOp([]byte(raw)); !ok {
			t.Errorf("plainOp declined %s", raw)
		}
	}
}

func FuzzPlainOp(f *testing.F) {
	for _, body := range fastDecodeBodies {
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, raw string) { checkPlainOp(t, raw) })
}

func checkPlainOp(t *testing.T, raw string) {
	t.Helper()
	op, ok := plainOp([]byte(raw))
	if !ok {
		return
	}
	var head struct {
		Op *string `json:"op"`
	}
	if err := json.Unmarshal([]byte(raw), &head); err != nil || head.Op == nil || *head.Op != op {
		t.Fatalf("plainOp(%q) = %q; encoding/json: %v, %v", raw, op, head.Op, err)
	}
}

// TestTypeErrorsInJSONTerms: a value of the wrong JSON type is named in
// JSON's terms.
func TestTypeErrorsInJSONTerms(t *testing.T) {
	for _, c := range []struct {
		body string
		v    any
		want string
	}{
		{`{"actions":"generate"}`, &jobs.LeaseRequest{}, `field "actions" must be an array of strings`},
		{`{"wait_seconds":"5"}`, &jobs.LeaseRequest{}, `field "wait_seconds" must be an integer within 64-bit range`},
		{`{"retryable":"yes"}`, &jobs.FailRequest{}, `field "retryable" must be true or false`},
		{`[]`, &jobs.FailRequest{}, `the request body must be a JSON object`},
		{`7`, &jobs.LeaseRequest{}, `the request body must be a JSON object`},
	} {
		err := decodeJSON([]byte(c.body), c.v)
		if err == nil || !strings.HasSuffix(err.Error(), ": "+c.want) {
			t.Errorf("%s: %v, want %q", c.body, err, c.want)
		}
	}
}
