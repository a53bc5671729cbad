package httpapi_test

import (
	"strings"
	"testing"
)

// TestNoOpEditsRefused reproduces issue 20 (an Adjust with all defaults
// was charged): an edit that cannot change the image is refused when the
// job is created, with 400 invalid_request naming why, and nothing is held
// or written; by the user's token and the admin key, and on a params
// change too.
func TestNoOpEditsRefused(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		e := newEnv(t, opts...)
		e.createAccount("alice", nil)
		alice := e.userToken("alice")
		src := e.upload(alice, "alice", pngImage(40, 30), 201).str("id")
		before, entries := e.available("alice"), e.entryCount("alice")

		cases := []struct {
			name, action string
			params       map[string]any
			msg          string
		}{
			{"AdjustDefaults", "adjust", map[string]any{"brightness": 0, "contrast": 0, "saturation": 0, "gamma": 1}, "leave the image unchanged"},
			{"AdjustGammaOne", "adjust", map[string]any{"gamma": 1}, "leave the image unchanged"},
			{"GrayscaleZero", "filter", map[string]any{"name": "grayscale", "amount": 0}, "0 leaves the image unchanged"},
			{"InvertZero", "filter", map[string]any{"name": "invert", "amount": 0}, "0 leaves the image unchanged"},
			{"CropWholeImage", "crop", map[string]any{"x": 0, "y": 0, "width": 40, "height": 30}, "is the whole 40x30 image"},
			{"CropWholeDefaultOrigin", "crop", map[string]any{"width": 40, "height": 30}, "is the whole 40x30 image"},
			{"CropOutside", "crop", map[string]any{"x": 1, "width": 40, "height": 30}, "not inside the 40x30 image"},
			{"ExpandByZero", "expand", map[string]any{"top": 0, "right": 0, "bottom": 0, "left": 0}, "adding nothing leaves the image unchanged"},
			{"UpscaleOne", "upscale", map[string]any{"factor": 1}, `"factor" must be 2 or 4, got 1`},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				tc.params["source"] = src
				for _, key := range []string{alice, adminKey} {
					r := e.as(key, 400, "POST", "/v1/jobs", map[string]any{"account_id": "alice", "action": tc.action, "params": tc.params})
					if r.errCode() != "invalid_request" || !strings.Contains(r.str("error.message"), tc.msg) {
						t.Fatalf("%s: %s, want invalid_request with %q", tc.name, r.raw, tc.msg)
					}
				}
			})
		}
		t.Run("NothingHeldOrWritten", func(t *testing.T) {
			if got := e.available("alice"); got != before {
				t.Errorf("available %d after refused edits, want %d", got, before)
			}
			if got := e.entryCount("alice"); got != entries {
				t.Errorf("%d entries after refused edits, want %d", got, entries)
			}
		})
		t.Run("ChangingToNoOpRefused", func(t *testing.T) {
			job := e.as(alice, 201, "POST", "/v1/jobs", map[string]any{"action": "crop", "params": map[string]any{"source": src, "width": 39, "height": 30}}).str("id")
			r := e.as(alice, 400, "PATCH", "/v1/jobs/"+job, map[string]any{"params": map[string]any{"source": src, "width": 40, "height": 30}})
			if r.errCode() != "invalid_request" || !strings.Contains(r.str("error.message"), "whole 40x30 image") {
				t.Fatalf("PATCH to the whole image: %s", r.raw)
			}
			if got := e.as(alice, 200, "GET", "/v1/jobs/"+job, nil).num("params.width"); got != 39 {
				t.Errorf("params.width %d after the refused change, want 39", got)
			}
		})
		e.verify()
	})
}
