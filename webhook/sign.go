// Package webhook delivers events to the endpoints admins register, in
// the Standard Webhooks format (https://www.standardwebhooks.com/): a
// JSON body {"type", "timestamp", "data"} with the headers webhook-id
// (the event's id, the same on every attempt, so receivers deduplicate),
// webhook-timestamp (unix seconds) and webhook-signature ("v1,<base64
// HMAC-SHA256 over id.timestamp.body>", keyed with the base64-decoded
// bytes of the endpoint's "whsec_…" secret).
//
// The Dispatcher tails the store's events from a persisted cursor, fans
// each out to the enabled endpoints that want it as delivery rows (in the
// transaction that moves the cursor), and sends due deliveries, at least
// once, with retries that back off exponentially with jitter (Schedule)
// for up to three days; an endpoint failing for DisableAfter is disabled.
// Each endpoint has its own sender, so a slow or dead one delays no other,
// and the ledger never waits for any. Requests go through a Client that
// refuses private, loopback and link-local addresses when it connects.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every endpoint secret.
const SecretPrefix = "whsec_"

// secretBytes is the length of a new secret's key.
const secretBytes = 24

// Header names of a delivery.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// NewSecret returns a new endpoint secret: "whsec_" + base64 of 24 random
// bytes.
func NewSecret() string {
	b := make([]byte, secretBytes)
	_, _ = rand.Read(b)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// secretKey decodes a secret's key bytes.
func secretKey(secret string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil || len(k) == 0 {
		return nil, errors.New("webhook: the secret is not whsec_ followed by base64")
	}
	return k, nil
}

// Sign returns the signature "v1,<base64 HMAC-SHA256>" of a message with
// id, timestamp and body under secret.
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	key, err := secretKey(secret)
	if err != nil {
		return "", err
	}
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, id, ts.Unix(), body)), nil
}

func mac(key []byte, id string, ts int64, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "."))
	m.Write(body)
	return m.Sum(nil)
}

// SignatureHeader is the webhook-signature header under several secrets
// (during a rotation, the new one and the old one): their signatures
// separated by spaces.
func SignatureHeader(secrets []string, id string, ts time.Time, body []byte) (string, error) {
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		sig, err := Sign(s, id, ts, body)
		if err != nil {
			return "", err
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}

// Verification errors.
var (
	ErrNoSignature = errors.New("webhook: no valid signature")
	ErrTimestamp   = errors.New("webhook: the timestamp is missing or too far from now")
)

// Tolerance is how far a message's timestamp may be from now for Verify.
const Tolerance = 5 * time.Minute

// Verify checks a received message as a receiver would: the timestamp
// within Tolerance of now, and one of the header's v1 signatures made
// with secret.
func Verify(secret, id, timestamp, signatures string, body []byte, now time.Time) error {
	key, err := secretKey(secret)
	if err != nil {
		return err
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || now.Sub(time.Unix(ts, 0)).Abs() > Tolerance {
		return ErrTimestamp
	}
	want := mac(key, id, ts, body)
	for _, s := range strings.Fields(signatures) {
		v, sig, ok := strings.Cut(s, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && subtle.ConstantTimeCompare(got, want) == 1 {
			return nil
		}
	}
	return ErrNoSignature
}
