// Package imageops owns the real image work of creditd's built-in
// generation worker and the checks on uploaded images.
//
// It does four things:
//
//   - Inspect validates uploaded bytes (PNG, JPEG or WebP only) from the
//     image header alone, against UploadBytesMax, PixelsMax and SideMax,
//     and against the declared content type.
//   - Validate and SourceID check a job's JSON params for one of Actions
//     without touching any image, so a bad job is refused before it is
//     queued or charged.
//   - MemoryBytes says, from the source's header alone, how much memory
//     Apply will hold for a job, so a caller can admit jobs by memory.
//   - Apply decodes a source image (honouring JPEG EXIF orientation), runs
//     the action with github.com/disintegration/imaging and returns the
//     result encoded as PNG.
//
// Every user-caused failure — bad bytes, bad params, a crop outside the
// image, an output over the limits — is a *ledger.Error with code
// ledger.EInvalid, so a job that fails here fails without charge. Other
// errors (for example a PNG encoder failure) are internal.
//
// Limits: only PNG, JPEG and WebP are read (GIF, BMP, TIFF and anything
// else are refused even when a decoder for them is linked into the
// binary); output is always PNG, never re-encoded to the source format;
// WebP cannot be written (golang.org/x/image has no encoder); animated
// images are not supported; EXIF orientation is read from JPEG only, as
// imaging does; colour profiles are ignored. The package keeps no state
// and is safe for concurrent use. A full decode holds the whole image in
// memory (up to PixelsMax*4 bytes, several times over while an action
// runs: a 40-Mpx blur needs about 500 MB), so callers bound the Apply
// calls that run at once by their MemoryBytes, as the built-in worker does.
package imageops

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"mime"
	"strings"

	// Decoders for the accepted formats. imaging links more (gif, bmp,
	// tiff); Inspect refuses those by name.
	_ "image/jpeg"

	_ "golang.org/x/image/webp"

	"github.com/creditd/creditd/ledger"
	"github.com/disintegration/imaging"
)

// Limits for uploaded images and for images the worker produces.
const (
	// UploadBytesMax is the largest encoded image, in bytes, that is
	// accepted as an upload or returned as an output.
	UploadBytesMax = 20 << 20
	// PixelsMax is the largest width*height of any image that is decoded
	// or produced (40 megapixels; about 160 MB as NRGBA).
	PixelsMax = 40_000_000
	// SideMax is the largest width or height of any image that is decoded
	// or produced.
	SideMax = 16384
)

// Info describes an accepted or produced image.
type Info struct {
	Format      string // "png", "jpeg" or "webp"
	ContentType string // "image/png", "image/jpeg" or "image/webp"
	Width       int    // as displayed, after JPEG EXIF orientation
	Height      int
}

// contentTypes maps each accepted format to its canonical media type.
var contentTypes = map[string]string{
	"png":  "image/png",
	"jpeg": "image/jpeg",
	"webp": "image/webp",
}

// contentTypeAliases are declared media types accepted for a format
// besides the canonical one.
var contentTypeAliases = map[string]string{
	"image/jpg": "jpeg",
}

func invalidf(format string, args ...any) error {
	return ledger.Errorf(ledger.EInvalid, format, args...)
}

// Inspect checks that data is a PNG, JPEG or WebP image within
// UploadBytesMax, SideMax and PixelsMax, reading only the header
// (image.DecodeConfig; the pixels are not decoded, so a truncated body is
// only found by Apply). If contentType is non-empty it must name the
// sniffed format (parameters such as "; charset=" are ignored; "image/jpg"
// is accepted for JPEG). Width and Height are the displayed size: for a
// JPEG whose EXIF orientation rotates it by 90°, they are swapped from the
// stored size, matching what Apply decodes. Every error is a
// *ledger.Error with code ledger.EInvalid.
func Inspect(data []byte, contentType string) (Info, error) {
	if len(data) == 0 {
		return Info{}, invalidf("image is empty")
	}
	if len(data) > UploadBytesMax {
		return Info{}, invalidf("image is %d bytes, over the limit of %d bytes (%d MiB)",
			len(data), UploadBytesMax, UploadBytesMax>>20)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if errors.Is(err, image.ErrFormat) {
		return Info{}, invalidf("not an image in an accepted format (accepted: PNG, JPEG, WebP)")
	}
	ct, ok := contentTypes[format]
	if !ok {
		return Info{}, invalidf("unsupported image format %q (accepted: PNG, JPEG, WebP)", format)
	}
	if err != nil {
		return Info{}, invalidf("invalid %s image: %v", format, err)
	}
	if contentType != "" {
		declared, ok := formatOfContentType(contentType)
		if !ok {
			return Info{}, invalidf("content type %q is not an accepted image type (accepted: image/png, image/jpeg, image/webp)", contentType)
		}
		if declared != format {
			return Info{}, invalidf("content type %q does not match the image data, which is %s", contentType, ct)
		}
	}
	w, h := cfg.Width, cfg.Height
	if err := checkSize(w, h, "image"); err != nil {
		return Info{}, err
	}
	if format == "jpeg" && jpegOrientation(data) >= 5 {
		w, h = h, w // orientations 5–8 transpose the image
	}
	return Info{Format: format, ContentType: ct, Width: w, Height: h}, nil
}

// formatOfContentType returns the accepted format a media type names.
func formatOfContentType(contentType string) (string, bool) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", false
	}
	mt = strings.ToLower(mt)
	if f, ok := contentTypeAliases[mt]; ok {
		return f, true
	}
	for f, ct := range contentTypes {
		if ct == mt {
			return f, true
		}
	}
	return "", false
}

// checkSize enforces SideMax and PixelsMax on a w×h image; what names the
// image in the message ("image", "output").
func checkSize(w, h int, what string) error {
	if w <= 0 || h <= 0 {
		return invalidf("%s has no pixels (%dx%d)", what, w, h)
	}
	if w > SideMax || h > SideMax {
		return invalidf("%s is %dx%d, over the limit of %d pixels per side", what, w, h, SideMax)
	}
	if int64(w)*int64(h) > PixelsMax {
		return invalidf("%s is %dx%d = %d pixels, over the limit of %d pixels",
			what, w, h, int64(w)*int64(h), PixelsMax)
	}
	return nil
}

// Apply runs action with params on the source image src and returns the
// result encoded as PNG with its Info. params are checked as by Validate;
// src is checked as by Inspect before it is fully decoded, and JPEG EXIF
// orientation is applied on decode. Checks that depend on the image — a
// crop rectangle outside it, an output over SideMax or PixelsMax (an
// upscale or expand of a large image), an encoded output over
// UploadBytesMax — are *ledger.Error with code ledger.EInvalid, as are an
// unreadable source and bad params.
func Apply(action string, params json.RawMessage, src []byte) (out []byte, info Info, err error) {
	op, err := parse(action, params)
	if err != nil {
		return nil, Info{}, err
	}
	if _, err := Inspect(src, ""); err != nil {
		return nil, Info{}, invalidf("source image: %s", ledger.ErrorMessage(err))
	}
	img, err := imaging.Decode(bytes.NewReader(src), imaging.AutoOrientation(true))
	if err != nil {
		return nil, Info{}, invalidf("source image could not be decoded: %v", err)
	}
	res, err := op.run(img)
	if err != nil {
		return nil, Info{}, err
	}
	b := res.Bounds()
	if err := checkSize(b.Dx(), b.Dy(), "output"); err != nil {
		return nil, Info{}, err
	}
	buf := &pngBuffer{b: make([]byte, 0, pngBufferBytes(b.Dx(), b.Dy()))}
	if err := png.Encode(buf, res); err != nil {
		if errors.Is(err, errOutputTooLarge) {
			return nil, Info{}, invalidf("output PNG is over the limit of %d bytes (%d MiB)", UploadBytesMax, UploadBytesMax>>20)
		}
		return nil, Info{}, fmt.Errorf("imageops: encode png: %w", err)
	}
	return buf.b, Info{Format: "png", ContentType: "image/png", Width: b.Dx(), Height: b.Dy()}, nil
}

var errOutputTooLarge = errors.New("output over UploadBytesMax")

// pngBuffer collects an encoded output and refuses to grow past
// UploadBytesMax, so an output that could not be stored stops the encoder
// instead of growing a buffer first.
type pngBuffer struct{ b []byte }

func (p *pngBuffer) Write(d []byte) (int, error) {
	if len(p.b)+len(d) > UploadBytesMax {
		return 0, errOutputTooLarge
	}
	p.b = append(p.b, d...)
	return len(d), nil
}
