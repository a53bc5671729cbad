package ledger

import (
	"testing"
	"time"
)

func TestWebhooksConfigValidate(t *testing.T) {
	for name, c := range map[string]struct {
		edit func(*Webhooks)
		ok   bool
	}{
		"Defaults":         {func(*Webhooks) {}, true},
		"OneRetry":         {func(w *Webhooks) { w.RetryScheduleSeconds = []int64{30} }, true},
		"NoRetries":        {func(w *Webhooks) { w.RetryScheduleSeconds = nil }, false},
		"TooManyRetries":   {func(w *Webhooks) { w.RetryScheduleSeconds = make([]int64, WebhookRetriesMax+1) }, false},
		"ZeroWait":         {func(w *Webhooks) { w.RetryScheduleSeconds = []int64{60, 0} }, false},
		"WaitTooLong":      {func(w *Webhooks) { w.RetryScheduleSeconds = []int64{WebhookRetryWaitSecondsMax + 1} }, false},
		"DisableTooSoon":   {func(w *Webhooks) { w.DisableAfterSeconds = 59 }, false},
		"DisableTooLate":   {func(w *Webhooks) { w.DisableAfterSeconds = WebhookDisableAfterSecondsMax + 1 }, false},
		"DisableAfterHour": {func(w *Webhooks) { w.DisableAfterSeconds = 3600 }, true},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			c.edit(&cfg.Webhooks)
			if err := cfg.Validate(); (err == nil) != c.ok {
				t.Fatalf("Validate: %v, want ok=%v", err, c.ok)
			}
		})
	}
	// The default schedule: 9 attempts over at least 3 days.
	var total time.Duration
	for _, w := range DefaultConfig().Webhooks.Schedule() {
		total += w
	}
	if total < 72*time.Hour || DefaultConfig().Webhooks.DisableAfter() != 72*time.Hour {
		t.Fatalf("default schedule %s in all, disable after %s; want at least 72h and 72h", total, DefaultConfig().Webhooks.DisableAfter())
	}
}
