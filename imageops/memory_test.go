package imageops

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/jpeg"
	"image/png"
	"runtime"
	"testing"
)

// ihdr returns a PNG signature and an IHDR chunk claiming w×h with the
// given bit depth, colour type and interlace method, and no image data:
// enough for image.DecodeConfig, nothing for a decoder.
func ihdr(w, h uint32, depth, colourType, interlace byte) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := append([]byte("IHDR"), binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, w), h)...)
	chunk = append(chunk, depth, colourType, 0, 0, interlace)
	_ = binary.Write(&b, binary.BigEndian, uint32(13))
	b.Write(chunk)
	_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

// TestMemoryBytesReadsTheHeader: the estimate comes from the header alone.
// The sources here are a PNG signature and IHDR with no pixel data, which
// Apply cannot decode; MemoryBytes still sizes the job from the dimensions
// and colour type the header declares.
func TestMemoryBytesReadsTheHeader(t *testing.T) {
	const w, h = 16000, 2500 // 40 Mpx: the largest image accepted
	px := int64(w * h)
	rgb := ihdr(w, h, 8, 2, 0) // 8-bit RGB: decoded as *image.RGBA
	out := func(ow, oh int64) int64 { return min(4*ow*oh+oh+(4*ow*oh+oh)/512+4096, UploadBytesMax) }
	cases := []struct {
		name, action, params string
		src                  []byte
		want                 int64 // besides the lines and the codecs
		outW, outH           int
	}{
		{"BlurRGB", "filter", `{"source":"a","name":"blur"}`, rgb, 4*px + 2*4*px + out(w, h), w, h},
		{"SharpenRGB", "filter", `{"source":"a","name":"sharpen"}`, rgb, 4*px + 3*4*px + out(w, h), w, h},
		{"HalfGrayscale", "filter", `{"source":"a","name":"grayscale","amount":50}`, rgb, 4*px + 2*4*px + out(w, h), w, h},
		{"Sepia", "filter", `{"source":"a","name":"sepia"}`, rgb, 4*px + 4*px + out(w, h), w, h},
		{"Gray8", "filter", `{"source":"a","name":"invert"}`, ihdr(w, h, 8, 0, 0), px + 4*px + out(w, h), w, h},
		{"RGBA16", "filter", `{"source":"a","name":"invert"}`, ihdr(w, h, 16, 6, 0), 8*px + 4*px + out(w, h), w, h},
		{"Interlaced", "filter", `{"source":"a","name":"invert"}`, ihdr(w, h, 8, 2, 1), 2*4*px + 4*px + out(w, h), w, h},
		{"AdjustTwoSteps", "adjust", `{"source":"a","contrast":10,"gamma":2,"brightness":1}`, rgb, 4*px + 2*4*px + out(w, h), w, h},
		{"Crop", "crop", `{"source":"a","x":15000,"y":100,"width":2000,"height":100}`, rgb, 4*px + 4*1000*100 + out(1000, 100), 1000, 100},
		{"Upscale", "upscale", `{"source":"a","factor":2}`, ihdr(3000, 2000, 8, 2, 0),
			4*6e6 + 4*6000*2000 + 4*6000*4000 + out(6000, 4000), 6000, 4000},
		{"UpscaleOverLimits", "upscale", `{"source":"a","factor":4}`, rgb, 4*px + out(0, 0), 0, 0},
		{"Expand", "expand", `{"source":"a","top":10,"left":20}`, ihdr(1000, 500, 8, 2, 0),
			4*5e5 + 2*4*1020*510 + out(1020, 510), 1020, 510},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := MemoryBytes(c.action, params(c.params), c.src)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := png.DecodeConfig(bytes.NewReader(c.src)) // the header alone
			if err != nil {
				t.Fatal(err)
			}
			lines := linesBytes(cfg.Width, cfg.Height, c.outW, c.outH)
			if want := int64(len(c.src)) + c.want + lines + codecBytes; got != want {
				t.Fatalf("MemoryBytes = %d; want %d", got, want)
			}
			if _, _, err := Apply(c.action, params(c.params), c.src); err == nil {
				t.Fatal("Apply decoded a source with no pixel data")
			}
		})
	}
	if _, err := MemoryBytes("filter", params(`{"source":"a","name":"blur"}`), rgb[:20]); err == nil {
		t.Error("a truncated header was sized")
	}
	if _, err := MemoryBytes("filter", params(`{"source":"a","name":"nope"}`), rgb); err == nil {
		t.Error("bad params were sized")
	}
}

// TestMemoryBytesJPEG: a progressive JPEG's coefficients and an EXIF
// rotation's copy are counted.
func TestMemoryBytesJPEG(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	base := b.Bytes()
	p := params(`{"source":"a","name":"sepia"}`)
	plain, err := MemoryBytes("filter", p, base)
	if err != nil {
		t.Fatal(err)
	}
	px := int64(64 * 48)
	if want := int64(len(base)) + 3*px + 4*px + linesBytes(64, 48, 64, 48) + pngBufferBytes(64, 48) + codecBytes; plain != want {
		t.Fatalf("baseline JPEG: %d; want %d", plain, want)
	}
	rotated := withOrientation(base, 6) // 48×64 as displayed
	got, err := MemoryBytes("filter", p, rotated)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len(rotated)) + 3*px + 4*px + 4*px + linesBytes(48, 64, 48, 64) + pngBufferBytes(48, 64) + codecBytes; got != want {
		t.Fatalf("rotated JPEG: %d; want %d", got, want)
	}
	// Make the frame header say progressive (SOF2): the decoder then keeps
	// 4 bytes a pixel per component.
	prog := bytes.Replace(base, []byte{0xff, 0xc0}, []byte{0xff, 0xc2}, 1)
	got, err = MemoryBytes("filter", p, prog)
	if err != nil {
		t.Fatal(err)
	}
	if want := plain + 12*px; got != want {
		t.Fatalf("progressive JPEG: %d; want %d", got, want)
	}
}

// TestMemoryBytesCoversApply: for actions whose allocations are all live at
// once, the estimate covers the images Apply allocates (decoded source,
// working images, output buffer). What the codecs allocate besides (zlib
// and deflate state, about 1 MB here) is measured on a 1×1 crop of the same
// source and must fit in codecBytes; beyond that, an action may allocate
// less than a quarter of an image more than its estimate, so one image
// left out of an estimate fails.
func TestMemoryBytesCoversApply(t *testing.T) {
	const w, h = 320, 240
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7 % 251) // incompressible enough to exercise the encoder
	}
	src := encodePNG(t, img)
	// extra is what Apply allocates beyond the estimate without codecBytes.
	extra := func(action, p string) (est, alloc int64) {
		t.Helper()
		est, err := MemoryBytes(action, params(p), src)
		if err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if _, _, err := Apply(action, params(p), src); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		return est - codecBytes, int64(after.TotalAlloc - before.TotalAlloc)
	}
	est, alloc := extra("crop", `{"source":"a","width":1,"height":1}`)
	codecs := alloc - est
	if codecs < 0 || codecs > codecBytes {
		t.Fatalf("the codecs allocated %d bytes; codecBytes allows %d", codecs, codecBytes)
	}
	for _, c := range []struct{ action, params string }{
		{"filter", `{"source":"a","name":"blur"}`},
		{"filter", `{"source":"a","name":"sharpen","amount":1}`},
		{"filter", `{"source":"a","name":"grayscale","amount":30}`},
		{"filter", `{"source":"a","name":"sepia"}`},
		{"crop", `{"source":"a","x":20,"y":10,"width":200,"height":150}`},
		{"upscale", `{"source":"a","factor":2}`},
		{"expand", `{"source":"a","top":50,"right":50}`},
		{"adjust", `{"source":"a","gamma":1.5}`},
	} {
		est, alloc := extra(c.action, c.params)
		t.Logf("%s %s: estimate %d + codecs, allocated %d", c.action, c.params, est, alloc)
		if over := alloc - codecs - est; over > nrgbaBytes(w, h)/4 {
			t.Errorf("%s %s: Apply allocated %d bytes beyond the estimate and the codecs", c.action, c.params, over)
		}
		if est > 2*alloc {
			t.Errorf("%s %s: estimate %d is more than twice the %d bytes Apply allocated", c.action, c.params, est, alloc)
		}
	}
}
