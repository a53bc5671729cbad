package imageops

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/disintegration/imaging"
)

// Actions served by the built-in worker. Their params (a JSON object; every
// action also takes "source", the asset id of the input image; unknown
// fields are refused):
//
//	crop     x, y (default 0, >= 0), width, height (> 0): the rectangle
//	         [x, x+width) × [y, y+height), which must lie inside the image
//	         and be smaller than it.
//	upscale  factor: 2 or 4 (Lanczos resampling).
//	expand   top, right, bottom, left (>= 0, not all 0): pixels added on
//	         each side; fill: "#rrggbb" or "#rrggbbaa" (default transparent).
//	adjust   brightness, contrast, saturation (percent, -100..100),
//	         gamma (0 < gamma <= 10; 1 is unchanged); at least one, and at
//	         least one that changes the image (not 0, or 1 for gamma);
//	         applied in that order.
//	filter   name: grayscale, sepia, blur, sharpen or invert; amount:
//	         for blur and sharpen the Gaussian sigma in pixels, 0 < amount
//	         <= 50, default 2; for the others the strength in percent,
//	         0 < amount <= 100, default 100 (the filtered image mixed with
//	         the source).
//
// Params that cannot change the image (an adjust at its neutral values, a
// filter at strength 0, a crop of the whole image, an expand by 0, an
// upscale ×1) are refused, so that no job is charged for a copy.
var Actions = []string{"crop", "upscale", "expand", "adjust", "filter"}

// Filters are the names the filter action accepts.
var Filters = []string{"grayscale", "sepia", "blur", "sharpen", "invert"}

// Param limits.
const (
	AdjustPercentMax = 100 // |brightness|, |contrast|, |saturation|
	GammaMax         = 10  // gamma in (0, GammaMax]
	SigmaMax         = 50  // blur/sharpen amount in (0, SigmaMax]
	SigmaDefault     = 2   // blur/sharpen amount when omitted
	StrengthMax      = 100 // grayscale/sepia/invert amount in [0, StrengthMax]
)

// operation is the parsed params of one action.
type operation interface {
	sourceID() string
	validate() error
	run(img image.Image) (image.Image, error)
	// memory is what run allocates for a w×h image (bytes live at once,
	// besides img itself) and the size of its output; an output over the
	// limits counts nothing, as run refuses it before allocating.
	memory(w, h int) (work int64, outW, outH int)
}

// source is what SourceID reads. Each action's params repeat the field
// rather than embed this struct, so that JSON type errors name it
// "source" (an embedded struct would prefix its own name).
type source struct {
	Source string `json:"source"`
}

func (o *cropOp) sourceID() string    { return o.Source }
func (o *upscaleOp) sourceID() string { return o.Source }
func (o *expandOp) sourceID() string  { return o.Source }
func (o *adjustOp) sourceID() string  { return o.Source }
func (o *filterOp) sourceID() string  { return o.Source }

// Validate checks a job's params for action without the source image. Every
// error is a *ledger.Error with code ledger.EInvalid naming the offending
// param. Checks that need the image (a crop inside its bounds, the output
// size) are made by Apply.
func Validate(action string, params json.RawMessage) error {
	_, err := parse(action, params)
	return err
}

// ValidateForSource checks a job's params for action against the size of
// its source image (width × height pixels): a crop must lie inside the
// image and be smaller than it. Call it after Validate; it returns nil
// for the actions whose params do not depend on the image's size.
func ValidateForSource(action string, params json.RawMessage, width, height int) error {
	op, err := parse(action, params)
	if err != nil {
		return err
	}
	if c, ok := op.(*cropOp); ok {
		return c.checkBounds(width, height, true)
	}
	return nil
}

// SourceID returns the "source" param (the asset id of the input image),
// or a *ledger.Error with code ledger.EInvalid when it is missing or not a
// string. Call it after Validate: it does not check the other params.
func SourceID(params json.RawMessage) (string, error) {
	var b source
	if err := decodeStrict(params, &b, false); err != nil {
		return "", err
	}
	if err := checkSource(b.Source); err != nil {
		return "", err
	}
	return b.Source, nil
}

func parse(action string, params json.RawMessage) (operation, error) {
	var op operation
	switch action {
	case "crop":
		op = &cropOp{}
	case "upscale":
		op = &upscaleOp{}
	case "expand":
		op = &expandOp{}
	case "adjust":
		op = &adjustOp{}
	case "filter":
		op = &filterOp{}
	default:
		return nil, invalidf("unknown action %q (known: %s)", action, strings.Join(Actions, ", "))
	}
	if err := decodeStrict(params, op, true); err != nil {
		return nil, err
	}
	if err := checkSource(op.sourceID()); err != nil {
		return nil, err
	}
	if err := op.validate(); err != nil {
		return nil, err
	}
	return op, nil
}

func checkSource(s string) error {
	if strings.TrimSpace(s) == "" {
		return invalidf(`param "source" is required: the asset id of the input image`)
	}
	return nil
}

// decodeStrict decodes a JSON object into v, turning every failure into a
// clear EInvalid error. strict refuses unknown fields.
func decodeStrict(params json.RawMessage, v any, strict bool) error {
	if len(bytes.TrimSpace(params)) == 0 {
		return invalidf(`params are required: a JSON object with at least "source"`)
	}
	dec := json.NewDecoder(bytes.NewReader(params))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalidf("params must be a single JSON object (extra data after it)")
	}
	return nil
}

func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return invalidf("params must be a JSON object, got %s", typeErr.Value)
		}
		return invalidf("param %q must be %s, got %s", typeErr.Field, jsonTypeName(typeErr.Type), typeErr.Value)
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return invalidf("params are not valid JSON: %v", err)
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return invalidf("unknown param %s", f)
	}
	return invalidf("invalid params: %s", strings.TrimPrefix(msg, "json: "))
}

func jsonTypeName(t reflect.Type) string {
	if t == nil {
		return "a valid value"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Pointer:
		return jsonTypeName(t.Elem())
	case reflect.Struct, reflect.Map:
		return "a JSON object"
	}
	return "a " + t.Kind().String()
}

// checkPixels refuses an integer param below lo or above SideMax (larger
// values could only fail later, and could overflow sums).
func checkPixels(name string, v, lo int) error {
	if v < lo {
		if lo == 0 {
			return invalidf("param %q must be >= 0, got %d", name, v)
		}
		return invalidf("param %q must be > 0, got %d", name, v)
	}
	if v > SideMax {
		return invalidf("param %q must be at most %d, got %d", name, SideMax, v)
	}
	return nil
}

// crop

type cropOp struct {
	Source string `json:"source"`
	X      int    `json:"x"`
	Y      int    `json:"y"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
}

func (o *cropOp) validate() error {
	for _, c := range []struct {
		name   string
		v, min int
	}{{"width", o.Width, 1}, {"height", o.Height, 1}, {"x", o.X, 0}, {"y", o.Y, 0}} {
		if err := checkPixels(c.name, c.v, c.min); err != nil {
			return err
		}
	}
	return nil
}

// checkBounds refuses a rectangle that is not inside a w×h image and,
// when whole is set, one that is the whole image (a crop that changes
// nothing).
func (o *cropOp) checkBounds(w, h int, whole bool) error {
	r := image.Rect(o.X, o.Y, o.X+o.Width, o.Y+o.Height)
	if !r.In(image.Rect(0, 0, w, h)) {
		return invalidf("crop rectangle x=%d y=%d width=%d height=%d is not inside the %dx%d image",
			o.X, o.Y, o.Width, o.Height, w, h)
	}
	if whole && r.Eq(image.Rect(0, 0, w, h)) {
		return invalidf("crop rectangle x=%d y=%d width=%d height=%d is the whole %dx%d image, which leaves it unchanged: choose a smaller rectangle",
			o.X, o.Y, o.Width, o.Height, w, h)
	}
	return nil
}

func (o *cropOp) run(img image.Image) (image.Image, error) {
	b := img.Bounds()
	if err := o.checkBounds(b.Dx(), b.Dy(), false); err != nil {
		return nil, err
	}
	r := image.Rect(o.X, o.Y, o.X+o.Width, o.Y+o.Height)
	return imaging.Crop(img, r.Add(b.Min)), nil
}

// memory: imaging.Crop copies the rectangle into a new NRGBA.
func (o *cropOp) memory(w, h int) (int64, int, int) {
	cw, ch := min(o.Width, max(w-o.X, 0)), min(o.Height, max(h-o.Y, 0))
	return nrgbaBytes(cw, ch), cw, ch
}

// upscale

type upscaleOp struct {
	Source string `json:"source"`
	Factor int    `json:"factor"`
}

func (o *upscaleOp) validate() error {
	if o.Factor != 2 && o.Factor != 4 {
		return invalidf("param %q must be 2 or 4, got %d", "factor", o.Factor)
	}
	return nil
}

func (o *upscaleOp) run(img image.Image) (image.Image, error) {
	b := img.Bounds()
	w, h := b.Dx()*o.Factor, b.Dy()*o.Factor
	if err := checkSize(w, h, fmt.Sprintf("output of upscaling the %dx%d image %dx", b.Dx(), b.Dy(), o.Factor)); err != nil {
		return nil, err
	}
	return imaging.Resize(img, w, h, imaging.Lanczos), nil
}

// memory: imaging.Resize scales the width into one NRGBA (w·f × h), then
// the height into the output (w·f × h·f).
func (o *upscaleOp) memory(w, h int) (int64, int, int) {
	ow, oh := w*o.Factor, h*o.Factor
	if checkSize(ow, oh, "output") != nil {
		return 0, 0, 0
	}
	return nrgbaBytes(ow, h) + nrgbaBytes(ow, oh), ow, oh
}

// expand

type expandOp struct {
	Source string `json:"source"`
	Top    int    `json:"top"`
	Right  int    `json:"right"`
	Bottom int    `json:"bottom"`
	Left   int    `json:"left"`
	Fill   string `json:"fill"`

	fill color.NRGBA
}

func (o *expandOp) validate() error {
	for _, c := range []struct {
		name string
		v    int
	}{{"top", o.Top}, {"right", o.Right}, {"bottom", o.Bottom}, {"left", o.Left}} {
		if err := checkPixels(c.name, c.v, 0); err != nil {
			return err
		}
	}
	if o.Top == 0 && o.Right == 0 && o.Bottom == 0 && o.Left == 0 {
		return invalidf(`params "top", "right", "bottom", "left": at least one must be > 0 (adding nothing leaves the image unchanged)`)
	}
	if o.Fill != "" {
		c, ok := parseHexColor(o.Fill)
		if !ok {
			return invalidf(`param "fill" must be a hex colour "#rrggbb" or "#rrggbbaa", got %q`, o.Fill)
		}
		o.fill = c
	}
	return nil
}

// parseHexColor parses "#rrggbb" (opaque) or "#rrggbbaa" (non-premultiplied).
func parseHexColor(s string) (color.NRGBA, bool) {
	h, ok := strings.CutPrefix(s, "#")
	if !ok || (len(h) != 6 && len(h) != 8) {
		return color.NRGBA{}, false
	}
	if len(h) == 6 {
		h += "ff"
	}
	v, err := strconv.ParseUint(h, 16, 32)
	if err != nil {
		return color.NRGBA{}, false
	}
	return color.NRGBA{R: uint8(v >> 24), G: uint8(v >> 16), B: uint8(v >> 8), A: uint8(v)}, true
}

func (o *expandOp) run(img image.Image) (image.Image, error) {
	b := img.Bounds()
	w, h := b.Dx()+o.Left+o.Right, b.Dy()+o.Top+o.Bottom
	if err := checkSize(w, h, fmt.Sprintf("output of expanding the %dx%d image", b.Dx(), b.Dy())); err != nil {
		return nil, err
	}
	canvas := imaging.New(w, h, o.fill)
	return imaging.Paste(canvas, img, image.Pt(o.Left, o.Top)), nil
}

// memory: the canvas, and imaging.Paste's copy of it (the output).
func (o *expandOp) memory(w, h int) (int64, int, int) {
	ow, oh := w+o.Left+o.Right, h+o.Top+o.Bottom
	if checkSize(ow, oh, "output") != nil {
		return 0, 0, 0
	}
	return 2 * nrgbaBytes(ow, oh), ow, oh
}

// adjust

type adjustOp struct {
	Source     string   `json:"source"`
	Brightness *float64 `json:"brightness"`
	Contrast   *float64 `json:"contrast"`
	Saturation *float64 `json:"saturation"`
	Gamma      *float64 `json:"gamma"`
}

func (o *adjustOp) validate() error {
	if o.Brightness == nil && o.Contrast == nil && o.Saturation == nil && o.Gamma == nil {
		return invalidf(`at least one of params "brightness", "contrast", "saturation", "gamma" is required`)
	}
	for _, c := range []struct {
		name string
		v    *float64
	}{{"brightness", o.Brightness}, {"contrast", o.Contrast}, {"saturation", o.Saturation}} {
		if c.v != nil && (*c.v < -AdjustPercentMax || *c.v > AdjustPercentMax || math.IsNaN(*c.v)) {
			return invalidf("param %q must be a percentage from -%d to %d, got %g", c.name, AdjustPercentMax, AdjustPercentMax, *c.v)
		}
	}
	if o.Gamma != nil && !(*o.Gamma > 0 && *o.Gamma <= GammaMax) {
		return invalidf("param %q must be > 0 and <= %d (1 leaves the image unchanged), got %g", "gamma", GammaMax, *o.Gamma)
	}
	changes := o.Gamma != nil && *o.Gamma != 1
	for _, v := range []*float64{o.Brightness, o.Contrast, o.Saturation} {
		changes = changes || v != nil && *v != 0
	}
	if !changes {
		return invalidf(`these adjustments leave the image unchanged: set "brightness", "contrast" or "saturation" to a value other than 0, or "gamma" to a value other than 1`)
	}
	return nil
}

func (o *adjustOp) run(img image.Image) (image.Image, error) {
	if o.Brightness != nil {
		img = imaging.AdjustBrightness(img, *o.Brightness)
	}
	if o.Contrast != nil {
		img = imaging.AdjustContrast(img, *o.Contrast)
	}
	if o.Saturation != nil {
		img = imaging.AdjustSaturation(img, *o.Saturation)
	}
	if o.Gamma != nil {
		img = imaging.AdjustGamma(img, *o.Gamma)
	}
	return img, nil
}

// memory: each step makes a new NRGBA from the previous one, so two are
// live at once when there are two steps or more.
func (o *adjustOp) memory(w, h int) (int64, int, int) {
	steps := 0
	for _, v := range []*float64{o.Brightness, o.Contrast, o.Saturation, o.Gamma} {
		if v != nil {
			steps++
		}
	}
	return int64(min(steps, 2)) * nrgbaBytes(w, h), w, h
}

// filter

type filterOp struct {
	Source string   `json:"source"`
	Name   string   `json:"name"`
	Amount *float64 `json:"amount"`

	amount float64 // sigma for blur/sharpen, strength 0..1 otherwise
}

func (o *filterOp) validate() error {
	switch o.Name {
	case "blur", "sharpen":
		o.amount = SigmaDefault
		if o.Amount != nil {
			if !(*o.Amount > 0 && *o.Amount <= SigmaMax) {
				return invalidf("param %q for %s is the sigma in pixels and must be > 0 and <= %d, got %g", "amount", o.Name, SigmaMax, *o.Amount)
			}
			o.amount = *o.Amount
		}
	case "grayscale", "sepia", "invert":
		o.amount = 1
		if o.Amount != nil {
			if !(*o.Amount >= 0 && *o.Amount <= StrengthMax) {
				return invalidf("param %q for %s is the strength in percent and must be from 0 to %d, got %g", "amount", o.Name, StrengthMax, *o.Amount)
			}
			if *o.Amount == 0 {
				return invalidf("param %q for %s is the strength in percent; 0 leaves the image unchanged: choose more than 0, up to %d", "amount", o.Name, StrengthMax)
			}
			o.amount = *o.Amount / StrengthMax
		}
	case "":
		return invalidf("param %q is required: one of %s", "name", strings.Join(Filters, ", "))
	default:
		return invalidf("param %q must be one of %s, got %q", "name", strings.Join(Filters, ", "), o.Name)
	}
	return nil
}

func (o *filterOp) run(img image.Image) (image.Image, error) {
	switch o.Name {
	case "blur":
		return imaging.Blur(img, o.amount), nil
	case "sharpen":
		return imaging.Sharpen(img, o.amount), nil
	case "grayscale":
		return mix(img, imaging.Grayscale(img), o.amount), nil
	case "invert":
		return mix(img, imaging.Invert(img), o.amount), nil
	case "sepia":
		t := o.amount
		return imaging.AdjustFunc(img, func(c color.NRGBA) color.NRGBA {
			r, g, b := float64(c.R), float64(c.G), float64(c.B)
			sr := math.Min(255, 0.393*r+0.769*g+0.189*b)
			sg := math.Min(255, 0.349*r+0.686*g+0.168*b)
			sb := math.Min(255, 0.272*r+0.534*g+0.131*b)
			return color.NRGBA{R: lerp(c.R, sr, t), G: lerp(c.G, sg, t), B: lerp(c.B, sb, t), A: c.A}
		}), nil
	}
	return nil, fmt.Errorf("imageops: filter %q passed validation but has no implementation", o.Name)
}

// memory: blur makes two NRGBA (the horizontal pass, then the vertical);
// sharpen those two and its output; grayscale and invert one, and the
// mixed copy when the strength is under 100%; sepia one.
func (o *filterOp) memory(w, h int) (int64, int, int) {
	planes := int64(1)
	switch {
	case o.Name == "blur":
		planes = 2
	case o.Name == "sharpen":
		planes = 3
	case (o.Name == "grayscale" || o.Name == "invert") && o.amount < 1:
		planes = 2
	}
	return planes * nrgbaBytes(w, h), w, h
}

// mix returns src mixed with filtered (same size, as produced by imaging)
// at strength t in [0, 1], keeping alpha; t == 1 returns filtered.
func mix(src image.Image, filtered *image.NRGBA, t float64) image.Image {
	if t >= 1 {
		return filtered
	}
	out := imaging.Clone(src)
	for i := 0; i+3 < len(out.Pix); i += 4 {
		for c := 0; c < 3; c++ {
			out.Pix[i+c] = lerp(out.Pix[i+c], float64(filtered.Pix[i+c]), t)
		}
	}
	return out
}

func lerp(a uint8, b, t float64) uint8 {
	v := float64(a) + (b-float64(a))*t + 0.5
	return uint8(math.Max(0, math.Min(255, v)))
}
