package imageops

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"image"
	"image/color"
	"runtime"

	"github.com/creditd/creditd/ledger"
)

// codecBytes covers what decoding and encoding hold besides the images:
// the zlib and deflate state, row buffers of up to SideMax pixels, and
// imaging's per-goroutine scan lines.
const codecBytes = 4 << 20

// MemoryBytes estimates the memory Apply needs to run action with params
// on src, from the image header alone (image.DecodeConfig; the pixels are
// not decoded): src itself, the decoded source, the images the action
// allocates while it runs (each an NRGBA of 4 bytes a pixel; see each
// operation's memory), the buffers that grow with its rows and columns,
// and the encoded output, which Apply bounds by UploadBytesMax. It counts what is live at once, not what a garbage
// collector has yet to reclaim. Bad params and a source Inspect refuses
// are the same *ledger.Error (code ledger.EInvalid) Apply returns.
//
// A 16000×2500 PNG (40 Mpx, RGB) filtered with blur needs about 500 MB:
// 160 MB decoded, 320 MB for the two passes of the blur, 20 MB of output
// buffer and the codecs.
func MemoryBytes(action string, params json.RawMessage, src []byte) (int64, error) {
	op, err := parse(action, params)
	if err != nil {
		return 0, err
	}
	info, err := Inspect(src, "")
	if err != nil {
		return 0, invalidf("source image: %s", ledger.ErrorMessage(err))
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(src))
	if err != nil {
		return 0, invalidf("source image: %v", err)
	}
	w, h := info.Width, info.Height
	work, outW, outH := op.memory(w, h)
	return int64(len(src)) + decodedBytes(cfg, info.Format, src) + work + linesBytes(w, h, outW, outH) +
		pngBufferBytes(outW, outH) + codecBytes, nil
}

// linesBytes covers what grows with the rows and columns rather than the
// pixels: imaging's resampling weights (about 180 bytes per output row and
// column) and work queues (8 bytes a row), and the scan lines each of its
// goroutines holds (up to 40 bytes per pixel of the longest side).
func linesBytes(w, h, outW, outH int) int64 {
	side := int64(max(w, h, outW, outH))
	return 256*int64(w+h+outW+outH) + 64*side*int64(runtime.GOMAXPROCS(0))
}

// nrgbaBytes is the size of a w×h *image.NRGBA, imaging's working format.
func nrgbaBytes(w, h int) int64 { return 4 * int64(max(w, 0)) * int64(max(h, 0)) }

// decodedBytes is what decoding src holds at its peak: the decoded image
// (by its colour model; a JPEG's YCbCr counted as 4:4:4), plus the seven
// pass images of an interlaced PNG, a progressive JPEG's coefficients (4
// bytes a pixel per component), a lossless WebP's ARGB pixels, and the
// NRGBA copy AutoOrientation makes of a JPEG whose EXIF orientation is
// not 1.
func decodedBytes(cfg image.Config, format string, src []byte) int64 {
	px := int64(cfg.Width) * int64(cfg.Height)
	var bpp int64
	components := int64(3)
	switch m := cfg.ColorModel; m {
	case color.GrayModel:
		bpp, components = 1, 1
	case color.Gray16Model:
		bpp = 2
	case color.RGBAModel, color.NRGBAModel:
		bpp = 4
	case color.RGBA64Model, color.NRGBA64Model:
		bpp = 8
	case color.YCbCrModel:
		bpp = 3
	case color.NYCbCrAModel:
		bpp = 4
	case color.CMYKModel:
		bpp, components = 4, 4
	default:
		if _, ok := m.(color.Palette); ok {
			bpp = 1
		} else {
			bpp = 8
		}
	}
	n := bpp * px
	switch format {
	case "png":
		if pngInterlaced(src) {
			n *= 2
		}
	case "jpeg":
		if jpegProgressive(src) {
			n += 4 * components * px
		}
		if o := jpegOrientation(src); o > 1 {
			n += 4 * px
		}
	case "webp":
		if cfg.ColorModel == color.NRGBAModel {
			n += 4 * px
		}
	}
	return n
}

// pngBufferBytes is the buffer Apply encodes a w×h output into: the raw
// pixels plus the PNG and zlib framing (stored blocks at worst), never
// more than UploadBytesMax.
func pngBufferBytes(w, h int) int64 {
	raw := nrgbaBytes(w, h) + int64(max(h, 0))
	return min(raw+raw/512+4096, UploadBytesMax)
}

// pngInterlaced reports whether a PNG's IHDR says Adam7 interlacing.
func pngInterlaced(data []byte) bool {
	// signature (8), IHDR length and type (8), width, height (8), bit
	// depth, colour type, compression, filter, interlace.
	return len(data) > 28 && string(data[12:16]) == "IHDR" && data[28] == 1
}

// jpegProgressive reports whether a JPEG's frame header is progressive
// (SOF2, or SOF6/SOF10/SOF14 which the decoder refuses anyway).
func jpegProgressive(data []byte) bool {
	if len(data) < 4 || data[0] != 0xff || data[1] != 0xd8 {
		return false
	}
	for p := 2; p+4 <= len(data) && data[p] == 0xff; {
		marker := data[p+1]
		switch marker {
		case 0xc2, 0xc6, 0xca, 0xce:
			return true
		case 0xc0, 0xc1, 0xc3, 0xc5, 0xc7, 0xc9, 0xcb, 0xcd, 0xcf, 0xda:
			return false
		}
		switch {
		case marker == 0xff: // fill byte
			p++
			continue
		case marker == 0x01 || marker >= 0xd0 && marker <= 0xd8: // no length
			p += 2
			continue
		}
		p += 2 + int(binary.BigEndian.Uint16(data[p+2:]))
	}
	return false
}
