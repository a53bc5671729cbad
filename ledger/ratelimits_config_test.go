package ledger

import "testing"

func TestRateLimitsValidate(t *testing.T) {
	for name, c := range map[string]struct {
		edit func(*Limits)
		ok   bool
	}{
		"Defaults":            {func(*Limits) {}, true},
		"UserLimitOff":        {func(l *Limits) { l.RequestsPerSecondPerUser = 0 }, true},
		"FailureThrottleOff":  {func(l *Limits) { l.AuthFailuresPerMinutePerAddress = 0 }, true},
		"NegativeUserRate":    {func(l *Limits) { l.RequestsPerSecondPerUser = -1 }, false},
		"ZeroUserBurst":       {func(l *Limits) { l.RequestsBurstPerUser = 0 }, false},
		"NegativeFailureRate": {func(l *Limits) { l.AuthFailuresPerMinutePerAddress = -1 }, false},
		"ZeroFailureBurst":    {func(l *Limits) { l.AuthFailuresBurstPerAddress = 0 }, false},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			c.edit(&cfg.Limits)
			if err := cfg.Validate(); (err == nil) != c.ok {
				t.Fatalf("Validate: %v, want ok=%v", err, c.ok)
			}
		})
	}
}
