package imageops

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"strings"
	"testing"

	"golang.org/x/image/bmp"

	"github.com/creditd/creditd/ledger"
)

// Quadrant colours of the 40×30 test image (each quadrant 20×15).
var (
	colTL = color.NRGBA{200, 40, 40, 255}   // top-left: red
	colTR = color.NRGBA{40, 200, 40, 255}   // top-right: green
	colBL = color.NRGBA{40, 40, 200, 255}   // bottom-left: blue
	colBR = color.NRGBA{120, 120, 120, 255} // bottom-right: grey
)

const srcW, srcH = 40, 30

// quadImage is a 40×30 image with four flat coloured quadrants.
func quadImage() *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, srcW, srcH))
	for y := 0; y < srcH; y++ {
		for x := 0; x < srcW; x++ {
			c := colTL
			switch {
			case x >= srcW/2 && y < srcH/2:
				c = colTR
			case x < srcW/2 && y >= srcH/2:
				c = colBL
			case x >= srcW/2 && y >= srcH/2:
				c = colBR
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// withOrientation inserts an EXIF APP1 segment with the given orientation
// tag right after the SOI marker of a JPEG.
func withOrientation(jpg []byte, orient uint16) []byte {
	var tiff bytes.Buffer
	tiff.WriteString("MM")
	binary.Write(&tiff, binary.BigEndian, uint16(42))
	binary.Write(&tiff, binary.BigEndian, uint32(8)) // IFD0 offset
	binary.Write(&tiff, binary.BigEndian, uint16(1)) // one entry
	binary.Write(&tiff, binary.BigEndian, uint16(0x0112))
	binary.Write(&tiff, binary.BigEndian, uint16(3)) // SHORT
	binary.Write(&tiff, binary.BigEndian, uint32(1))
	binary.Write(&tiff, binary.BigEndian, orient)
	binary.Write(&tiff, binary.BigEndian, uint16(0))
	binary.Write(&tiff, binary.BigEndian, uint32(0)) // no next IFD
	payload := append([]byte("Exif\x00\x00"), tiff.Bytes()...)
	var out bytes.Buffer
	out.Write(jpg[:2])
	out.Write([]byte{0xff, 0xe1})
	binary.Write(&out, binary.BigEndian, uint16(len(payload)+2))
	out.Write(payload)
	out.Write(jpg[2:])
	return out.Bytes()
}

// pngHeader returns a PNG signature and a valid IHDR chunk claiming w×h,
// with no image data: enough for image.DecodeConfig.
func pngHeader(w, h uint32, corruptCRC bool) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := make([]byte, 0, 17)
	chunk = append(chunk, "IHDR"...)
	chunk = binary.BigEndian.AppendUint32(chunk, w)
	chunk = binary.BigEndian.AppendUint32(chunk, h)
	chunk = append(chunk, 8, 6, 0, 0, 0) // 8-bit RGBA, no interlace
	binary.Write(&b, binary.BigEndian, uint32(13))
	b.Write(chunk)
	crc := crc32.ChecksumIEEE(chunk)
	if corruptCRC {
		crc++
	}
	binary.Write(&b, binary.BigEndian, crc)
	return b.Bytes()
}

// webp4x2 is a 4×2 lossless WebP (made with `cwebp -lossless -exact`):
// columns 0–1 are opaque red, columns 2–3 opaque blue.
var webp4x2 = []byte{
	0x52, 0x49, 0x46, 0x46, 0x22, 0x00, 0x00, 0x00, 0x57, 0x45, 0x42, 0x50,
	0x56, 0x50, 0x38, 0x4c, 0x16, 0x00, 0x00, 0x00, 0x2f, 0x03, 0x40, 0x00,
	0x00, 0x0f, 0x10, 0xf3, 0xbf, 0xff, 0xf3, 0x1f, 0x0e, 0x14, 0x02, 0x08,
	0x80, 0x82, 0x26, 0xa2, 0xff, 0xf1,
}

func decodeOut(t *testing.T, out []byte) *image.NRGBA {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("output is not a PNG: %v", err)
	}
	n := image.NewNRGBA(img.Bounds())
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			n.Set(x, y, img.At(x, y))
		}
	}
	return n
}

// wantInvalid fails unless err is a *ledger.Error with code EInvalid whose
// message contains substr.
func wantInvalid(t *testing.T, err error, substr string) {
	t.Helper()
	var le *ledger.Error
	if !errors.As(err, &le) {
		t.Fatalf("error = %v (%T), want *ledger.Error", err, err)
	}
	if le.Code != ledger.EInvalid {
		t.Fatalf("code = %q, want %q (message %q)", le.Code, ledger.EInvalid, le.Message)
	}
	if !strings.Contains(le.Message, substr) {
		t.Fatalf("message = %q, want it to contain %q", le.Message, substr)
	}
}

func near(a, b color.NRGBA, tol int) bool {
	d := func(x, y uint8) bool {
		v := int(x) - int(y)
		return v >= -tol && v <= tol
	}
	return d(a.R, b.R) && d(a.G, b.G) && d(a.B, b.B) && d(a.A, b.A)
}

func meanRGB(img *image.NRGBA) float64 {
	var sum float64
	for i := 0; i < len(img.Pix); i += 4 {
		sum += float64(img.Pix[i]) + float64(img.Pix[i+1]) + float64(img.Pix[i+2])
	}
	return sum / float64(len(img.Pix)/4*3)
}

func params(s string) json.RawMessage { return json.RawMessage(s) }

func TestInspect(t *testing.T) {
	pngData := encodePNG(t, quadImage())
	jpgData := encodeJPEG(t, quadImage())
	var gifBuf, bmpBuf bytes.Buffer
	if err := gif.Encode(&gifBuf, quadImage(), nil); err != nil {
		t.Fatal(err)
	}
	if err := bmp.Encode(&bmpBuf, quadImage()); err != nil {
		t.Fatal(err)
	}
	oversize := make([]byte, UploadBytesMax+1)
	copy(oversize, pngData)

	ok := []struct {
		name, ct string
		data     []byte
		want     Info
	}{
		{"PNG", "", pngData, Info{"png", "image/png", 40, 30}},
		{"PNGContentType", "image/png", pngData, Info{"png", "image/png", 40, 30}},
		{"PNGContentTypeParamsAndCase", "Image/PNG; name=x", pngData, Info{"png", "image/png", 40, 30}},
		{"JPEG", "image/jpeg", jpgData, Info{"jpeg", "image/jpeg", 40, 30}},
		{"JPEGAliasJpg", "image/jpg", jpgData, Info{"jpeg", "image/jpeg", 40, 30}},
		{"JPEGExifRotated", "image/jpeg", withOrientation(jpgData, 6), Info{"jpeg", "image/jpeg", 30, 40}},
		{"JPEGExifFlipped", "", withOrientation(jpgData, 2), Info{"jpeg", "image/jpeg", 40, 30}},
		{"WebP", "image/webp", webp4x2, Info{"webp", "image/webp", 4, 2}},
		{"AtSideLimit", "", pngHeader(SideMax, 100, false), Info{"png", "image/png", SideMax, 100}},
		{"AtPixelLimit", "", pngHeader(8000, 5000, false), Info{"png", "image/png", 8000, 5000}},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Inspect(tc.data, tc.ct)
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			if got != tc.want {
				t.Fatalf("Info = %+v, want %+v", got, tc.want)
			}
		})
	}

	bad := []struct {
		name, ct string
		data     []byte
		msg      string
	}{
		{"Empty", "", nil, "empty"},
		{"Garbage", "", []byte("this is not an image at all"), "not an image"},
		{"GIF", "", gifBuf.Bytes(), `unsupported image format "gif"`},
		{"BMP", "image/bmp", bmpBuf.Bytes(), `unsupported image format "bmp"`},
		{"OverByteLimit", "", oversize, "over the limit of 20971520 bytes"},
		{"HugeSides", "", pngHeader(100000, 100000, false), "per side"},
		{"OneSideOverLimit", "", pngHeader(SideMax+1, 1, false), "per side"},
		{"OverPixelLimit", "", pngHeader(8000, 5001, false), "over the limit of 40000000 pixels"},
		{"ZeroSize", "", pngHeader(0, 10, false), "invalid png image"},
		{"CorruptHeader", "", pngHeader(10, 10, true), "invalid png image"},
		{"TruncatedPNG", "", pngData[:12], "invalid png image"},
		{"ContentTypeMismatchPNGAsJPEG", "image/jpeg", pngData, "does not match"},
		{"ContentTypeMismatchJPEGAsPNG", "image/png", jpgData, "does not match"},
		{"ContentTypeMismatchWebPAsPNG", "image/png", webp4x2, "does not match"},
		{"ContentTypeNotImage", "text/plain", pngData, "not an accepted image type"},
		{"ContentTypeGIF", "image/gif", pngData, "not an accepted image type"},
		{"ContentTypeMalformed", "image/png;;;=", pngData, "not an accepted image type"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Inspect(tc.data, tc.ct)
			wantInvalid(t, err, tc.msg)
		})
	}
}

func TestApplyCrop(t *testing.T) {
	src := quadImage()
	out, info, err := Apply("crop", params(`{"source":"a1","x":15,"y":10,"width":10,"height":12}`), encodePNG(t, src))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Info{"png", "image/png", 10, 12}); info != want {
		t.Fatalf("Info = %+v, want %+v", info, want)
	}
	got := decodeOut(t, out)
	if b := got.Bounds(); b.Dx() != 10 || b.Dy() != 12 {
		t.Fatalf("output is %v, want 10x12", b)
	}
	for y := 0; y < 12; y++ {
		for x := 0; x < 10; x++ {
			if g, w := got.NRGBAAt(x, y), src.NRGBAAt(15+x, 10+y); g != w {
				t.Fatalf("pixel (%d,%d) = %v, want source pixel (%d,%d) = %v", x, y, g, 15+x, 10+y, w)
			}
		}
	}
	// The four quadrant colours meet at (5,5) in the output.
	for _, c := range []struct {
		x, y int
		want color.NRGBA
	}{{0, 0, colTL}, {9, 0, colTR}, {0, 11, colBL}, {9, 11, colBR}} {
		if g := got.NRGBAAt(c.x, c.y); g != c.want {
			t.Errorf("pixel (%d,%d) = %v, want %v", c.x, c.y, g, c.want)
		}
	}
}

func TestApplyCropWholeImage(t *testing.T) {
	out, info, err := Apply("crop", params(`{"source":"a1","width":40,"height":30}`), encodePNG(t, quadImage()))
	if err != nil {
		t.Fatal(err)
	}
	if info.Width != 40 || info.Height != 30 || len(out) == 0 {
		t.Fatalf("Info = %+v", info)
	}
}

func TestApplyCropOutside(t *testing.T) {
	src := encodePNG(t, quadImage())
	for name, p := range map[string]string{
		"TooWide":       `{"source":"a1","x":0,"y":0,"width":41,"height":10}`,
		"TooTall":       `{"source":"a1","x":0,"y":0,"width":10,"height":31}`,
		"OffsetPastEnd": `{"source":"a1","x":35,"y":0,"width":10,"height":10}`,
		"StartOutside":  `{"source":"a1","x":40,"y":30,"width":1,"height":1}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := Apply("crop", params(p), src)
			wantInvalid(t, err, "not inside the 40x30 image")
		})
	}
}

func TestApplyCropJPEGExifOrientation(t *testing.T) {
	// Orientation 6 rotates the stored 40×30 image 90° clockwise to 30×40;
	// crop coordinates are in the displayed image.
	src := withOrientation(encodeJPEG(t, quadImage()), 6)
	_, _, err := Apply("crop", params(`{"source":"a","width":40,"height":30}`), src)
	wantInvalid(t, err, "not inside the 30x40 image")

	out, info, err := Apply("crop", params(`{"source":"a","width":30,"height":40}`), src)
	if err != nil {
		t.Fatal(err)
	}
	if info.Width != 30 || info.Height != 40 {
		t.Fatalf("Info = %+v, want 30x40", info)
	}
	got := decodeOut(t, out)
	// After a clockwise turn the stored top-left (red) quadrant is top-right,
	// and the bottom-left (blue) one is top-left.
	if g := got.NRGBAAt(22, 10); !near(g, colTL, 12) {
		t.Errorf("top-right = %v, want about %v", g, colTL)
	}
	if g := got.NRGBAAt(7, 10); !near(g, colBL, 12) {
		t.Errorf("top-left = %v, want about %v", g, colBL)
	}
}

func TestApplyUpscale(t *testing.T) {
	src := encodePNG(t, quadImage())
	for _, f := range []int{2, 4} {
		t.Run(map[int]string{2: "Factor2", 4: "Factor4"}[f], func(t *testing.T) {
			out, info, err := Apply("upscale", params(`{"source":"a1","factor":`+string(rune('0'+f))+`}`), src)
			if err != nil {
				t.Fatal(err)
			}
			if info.Width != srcW*f || info.Height != srcH*f {
				t.Fatalf("Info = %+v, want %dx%d", info, srcW*f, srcH*f)
			}
			got := decodeOut(t, out)
			if b := got.Bounds(); b.Dx() != srcW*f || b.Dy() != srcH*f {
				t.Fatalf("output is %v", b)
			}
			// Centres of the quadrants (10,7), (30,7), (10,22), (30,22), scaled.
			for _, c := range []struct {
				x, y int
				want color.NRGBA
			}{{10, 7, colTL}, {30, 7, colTR}, {10, 22, colBL}, {30, 22, colBR}} {
				if g := got.NRGBAAt(c.x*f, c.y*f); !near(g, c.want, 2) {
					t.Errorf("centre (%d,%d) = %v, want %v", c.x*f, c.y*f, g, c.want)
				}
			}
		})
	}
}

func TestApplyUpscaleOverLimits(t *testing.T) {
	t.Run("Side", func(t *testing.T) {
		// 4100 × 4 = 16400 > SideMax.
		src := encodePNG(t, image.NewGray(image.Rect(0, 0, 4100, 2)))
		_, _, err := Apply("upscale", params(`{"source":"a","factor":4}`), src)
		wantInvalid(t, err, "per side")
	})
	t.Run("Pixels", func(t *testing.T) {
		// 1600×1600 upscaled 4× is 6400×6400 = 40.96 Mpx > PixelsMax.
		src := encodePNG(t, image.NewGray(image.Rect(0, 0, 1600, 1600)))
		_, _, err := Apply("upscale", params(`{"source":"a","factor":4}`), src)
		wantInvalid(t, err, "over the limit of 40000000 pixels")
	})
}

func TestApplyExpand(t *testing.T) {
	src := quadImage()
	cases := []struct {
		name, fill string
		want       color.NRGBA
	}{
		{"OpaqueFill", `,"fill":"#112233"`, color.NRGBA{0x11, 0x22, 0x33, 0xff}},
		{"AlphaFillUpperCase", `,"fill":"#AABBCC80"`, color.NRGBA{0xaa, 0xbb, 0xcc, 0x80}},
		{"DefaultTransparent", ``, color.NRGBA{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := `{"source":"a1","top":2,"right":3,"bottom":4,"left":5` + tc.fill + `}`
			out, info, err := Apply("expand", params(p), encodePNG(t, src))
			if err != nil {
				t.Fatal(err)
			}
			if info.Width != 48 || info.Height != 36 {
				t.Fatalf("Info = %+v, want 48x36", info)
			}
			got := decodeOut(t, out)
			for _, pt := range []image.Point{{0, 0}, {47, 35}, {4, 10}, {45, 10}, {20, 1}, {20, 32}} {
				if g := got.NRGBAAt(pt.X, pt.Y); g != tc.want {
					t.Errorf("border %v = %v, want fill %v", pt, g, tc.want)
				}
			}
			for _, pt := range []image.Point{{0, 0}, {39, 0}, {0, 29}, {39, 29}, {20, 15}} {
				if g, w := got.NRGBAAt(pt.X+5, pt.Y+2), src.NRGBAAt(pt.X, pt.Y); g != w {
					t.Errorf("inside %v = %v, want source %v", pt, g, w)
				}
			}
		})
	}
	t.Run("OverSideLimit", func(t *testing.T) {
		src := encodePNG(t, image.NewGray(image.Rect(0, 0, 10, 10)))
		_, _, err := Apply("expand", params(`{"source":"a","left":16384}`), src)
		wantInvalid(t, err, "per side")
	})
}

func TestApplyAdjust(t *testing.T) {
	srcImg := quadImage()
	src := encodePNG(t, srcImg)
	before := meanRGB(srcImg)
	run := func(t *testing.T, p string) *image.NRGBA {
		t.Helper()
		out, info, err := Apply("adjust", params(p), src)
		if err != nil {
			t.Fatal(err)
		}
		if info.Width != srcW || info.Height != srcH {
			t.Fatalf("Info = %+v", info)
		}
		return decodeOut(t, out)
	}
	t.Run("BrightnessUp", func(t *testing.T) {
		if after := meanRGB(run(t, `{"source":"a","brightness":30}`)); after <= before+20 {
			t.Errorf("mean %f -> %f, want it raised", before, after)
		}
	})
	t.Run("BrightnessDown", func(t *testing.T) {
		if after := meanRGB(run(t, `{"source":"a","brightness":-30}`)); after >= before-20 {
			t.Errorf("mean %f -> %f, want it lowered", before, after)
		}
	})
	t.Run("GammaUp", func(t *testing.T) {
		if after := meanRGB(run(t, `{"source":"a","gamma":2}`)); after <= before+10 {
			t.Errorf("mean %f -> %f, want it raised", before, after)
		}
	})
	t.Run("ContrastUp", func(t *testing.T) {
		got := run(t, `{"source":"a","contrast":50}`).NRGBAAt(10, 7)
		if !(got.R > colTL.R && got.G < colTL.G) {
			t.Errorf("red quadrant %v -> %v, want channels pushed apart", colTL, got)
		}
	})
	t.Run("SaturationDown", func(t *testing.T) {
		got := run(t, `{"source":"a","saturation":-100}`).NRGBAAt(10, 7)
		if !near(got, color.NRGBA{got.R, got.R, got.R, 255}, 1) {
			t.Errorf("red quadrant %v -> %v, want grey", colTL, got)
		}
	})
	t.Run("NeutralRefused", func(t *testing.T) {
		_, _, err := Apply("adjust", params(`{"source":"a","brightness":0,"contrast":0,"saturation":0,"gamma":1}`), src)
		wantInvalid(t, err, "leave the image unchanged")
	})
}

func TestApplyFilter(t *testing.T) {
	srcImg := quadImage()
	src := encodePNG(t, srcImg)
	run := func(t *testing.T, p string) *image.NRGBA {
		t.Helper()
		out, info, err := Apply("filter", params(p), src)
		if err != nil {
			t.Fatal(err)
		}
		if info.Width != srcW || info.Height != srcH {
			t.Fatalf("Info = %+v", info)
		}
		return decodeOut(t, out)
	}
	t.Run("Grayscale", func(t *testing.T) {
		got := run(t, `{"source":"a","name":"grayscale"}`)
		for i := 0; i < len(got.Pix); i += 4 {
			if p := got.Pix[i : i+4]; p[0] != p[1] || p[1] != p[2] || p[3] != 255 {
				t.Fatalf("pixel %d = %v, want R==G==B", i/4, p)
			}
		}
	})
	t.Run("GrayscaleHalf", func(t *testing.T) {
		got := run(t, `{"source":"a","name":"grayscale","amount":50}`).NRGBAAt(10, 7)
		// Luma of colTL is 0.299*200+0.587*40+0.114*40 ≈ 88; halfway ≈ 144, 64, 64.
		if !near(got, color.NRGBA{144, 64, 64, 255}, 2) {
			t.Errorf("half grayscale of %v = %v", colTL, got)
		}
	})
	t.Run("Invert", func(t *testing.T) {
		got := run(t, `{"source":"a","name":"invert"}`)
		for i := 0; i < len(got.Pix); i += 4 {
			for c := 0; c < 3; c++ {
				if got.Pix[i+c] != 255-srcImg.Pix[i+c] {
					t.Fatalf("pixel %d channel %d = %d, want 255-%d", i/4, c, got.Pix[i+c], srcImg.Pix[i+c])
				}
			}
			if got.Pix[i+3] != 255 {
				t.Fatalf("alpha changed at pixel %d", i/4)
			}
		}
	})
	t.Run("InvertZeroAmountRefused", func(t *testing.T) {
		_, _, err := Apply("filter", params(`{"source":"a","name":"invert","amount":0}`), src)
		wantInvalid(t, err, "0 leaves the image unchanged")
	})
	t.Run("Sepia", func(t *testing.T) {
		got := run(t, `{"source":"a","name":"sepia"}`)
		for i := 0; i < len(got.Pix); i += 4 {
			if p := got.Pix[i : i+4]; !(p[0] >= p[1] && p[1] >= p[2] && p[0] > p[2]) {
				t.Fatalf("pixel %d = %v, want a warm tone R>=G>B", i/4, p)
			}
		}
		// The blue quadrant becomes brownish, not blue.
		if g := got.NRGBAAt(10, 22); g.B >= g.R {
			t.Errorf("sepia of blue = %v", g)
		}
	})
	t.Run("Blur", func(t *testing.T) {
		got := run(t, `{"source":"a","name":"blur","amount":1.5}`)
		// Pixels at the red/green edge mix; the centre of a quadrant stays.
		edge := got.NRGBAAt(19, 7)
		if !(edge.R < colTL.R && edge.G > colTL.G) {
			t.Errorf("edge pixel %v not blurred towards green", edge)
		}
		if g := got.NRGBAAt(10, 7); !near(g, colTL, 1) {
			t.Errorf("quadrant centre = %v, want %v", g, colTL)
		}
	})
	t.Run("BlurDefaultSigma", func(t *testing.T) {
		if got := run(t, `{"source":"a","name":"blur"}`).NRGBAAt(19, 7); got == colTL {
			t.Errorf("edge pixel unchanged by blur")
		}
	})
	t.Run("Sharpen", func(t *testing.T) {
		got := run(t, `{"source":"a","name":"sharpen","amount":2}`)
		// Sharpening overshoots at the edge: the red side gets redder.
		edge := got.NRGBAAt(19, 7)
		if !(edge.R > colTL.R && edge.G < colTL.G) {
			t.Errorf("edge pixel %v not sharpened (source %v)", edge, colTL)
		}
		if g := got.NRGBAAt(5, 3); !near(g, colTL, 1) {
			t.Errorf("flat area = %v, want %v", g, colTL)
		}
	})
}

func TestApplyWebP(t *testing.T) {
	out, info, err := Apply("filter", params(`{"source":"w","name":"invert"}`), webp4x2)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Info{"png", "image/png", 4, 2}); info != want {
		t.Fatalf("Info = %+v, want %+v", info, want)
	}
	got := decodeOut(t, out)
	if g, w := got.NRGBAAt(0, 0), (color.NRGBA{0, 255, 255, 255}); g != w {
		t.Errorf("inverted red = %v, want %v", g, w)
	}
	if g, w := got.NRGBAAt(3, 1), (color.NRGBA{255, 255, 0, 255}); g != w {
		t.Errorf("inverted blue = %v, want %v", g, w)
	}
}

func TestApplyErrors(t *testing.T) {
	pngData := encodePNG(t, quadImage())
	var gifBuf bytes.Buffer
	if err := gif.Encode(&gifBuf, quadImage(), nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, action, params string
		src                  []byte
		msg                  string
	}{
		{"BadParams", "crop", `{"source":"a","width":0,"height":1}`, pngData, `"width" must be > 0`},
		{"UnknownAction", "rotate", `{"source":"a"}`, pngData, "unknown action"},
		{"GarbageSource", "upscale", `{"source":"a","factor":2}`, []byte("nope"), "source image: not an image"},
		{"GIFSource", "upscale", `{"source":"a","factor":2}`, gifBuf.Bytes(), `source image: unsupported image format "gif"`},
		{"HugeSource", "upscale", `{"source":"a","factor":2}`, pngHeader(100000, 100000, false), "source image: image is 100000x100000"},
		{"TruncatedSource", "upscale", `{"source":"a","factor":2}`, pngData[:len(pngData)/2], "could not be decoded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := Apply(tc.action, params(tc.params), tc.src)
			wantInvalid(t, err, tc.msg)
			if out != nil {
				t.Errorf("output returned with error")
			}
		})
	}
}

func TestValidate(t *testing.T) {
	valid := []struct{ name, action, params string }{
		{"Crop", "crop", `{"source":"a","x":0,"y":0,"width":1,"height":1}`},
		{"CropDefaultOrigin", "crop", `{"source":"a","width":5,"height":5}`},
		{"CropAtSideMax", "crop", `{"source":"a","x":16384,"y":16384,"width":16384,"height":16384}`},
		{"Upscale2", "upscale", `{"source":"a","factor":2}`},
		{"Upscale4", "upscale", `{"source":"a","factor":4}`},
		{"ExpandOneSide", "expand", `{"source":"a","bottom":1}`},
		{"ExpandFillRGB", "expand", `{"source":"a","left":1,"fill":"#00ff7F"}`},
		{"ExpandFillRGBA", "expand", `{"source":"a","left":1,"fill":"#00ff7f00"}`},
		{"AdjustBrightnessOnly", "adjust", `{"source":"a","brightness":-100}`},
		{"AdjustBounds", "adjust", `{"source":"a","brightness":100,"contrast":-100,"saturation":100,"gamma":10}`},
		{"AdjustGammaSmall", "adjust", `{"source":"a","gamma":0.01}`},
		{"AdjustOneNeutralOneNot", "adjust", `{"source":"a","contrast":0,"gamma":1,"brightness":0.5}`},
		{"AdjustGammaOnly", "adjust", `{"source":"a","gamma":1.1}`},
		{"FilterGrayscale", "filter", `{"source":"a","name":"grayscale"}`},
		{"FilterSepiaAmount", "filter", `{"source":"a","name":"sepia","amount":100}`},
		{"FilterInvertSmall", "filter", `{"source":"a","name":"invert","amount":0.5}`},
		{"FilterBlurDefault", "filter", `{"source":"a","name":"blur"}`},
		{"FilterBlurMax", "filter", `{"source":"a","name":"blur","amount":50}`},
		{"FilterSharpenSmall", "filter", `{"source":"a","name":"sharpen","amount":0.1}`},
		{"WhitespaceAround", "upscale", " \n{\"source\":\"a\",\"factor\":2}\n "},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			if err := Validate(tc.action, params(tc.params)); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}

	invalid := []struct{ name, action, params, msg string }{
		// Any action.
		{"UnknownAction", "rotate", `{"source":"a"}`, `unknown action "rotate"`},
		{"EmptyAction", "", `{"source":"a"}`, "unknown action"},
		{"EmptyParams", "crop", ``, "params are required"},
		{"BlankParams", "crop", "  ", "params are required"},
		{"NullParams", "upscale", `null`, `"source" is required`},
		{"ParamsArray", "upscale", `[1,2]`, "params must be a JSON object"},
		{"ParamsString", "upscale", `"a"`, "params must be a JSON object"},
		{"InvalidJSON", "upscale", `{"source":"a",`, "not valid JSON"},
		{"TrailingData", "upscale", `{"source":"a","factor":2} {}`, "single JSON object"},
		{"MissingSource", "upscale", `{"factor":2}`, `"source" is required`},
		{"NullSource", "upscale", `{"source":null,"factor":2}`, `"source" is required`},
		{"BlankSource", "upscale", `{"source":"  ","factor":2}`, `"source" is required`},
		{"SourceNotString", "upscale", `{"source":12,"factor":2}`, `param "source" must be a string, got number`},
		{"UnknownField", "upscale", `{"source":"a","factor":2,"scale":3}`, `unknown param "scale"`},
		{"FieldOfOtherAction", "crop", `{"source":"a","width":1,"height":1,"factor":2}`, `unknown param "factor"`},
		// crop
		{"CropNegativeWidth", "crop", `{"source":"a","width":-1,"height":1}`, `"width" must be > 0, got -1`},
		{"CropZeroWidth", "crop", `{"source":"a","width":0,"height":1}`, `"width" must be > 0`},
		{"CropMissingWidth", "crop", `{"source":"a","height":1}`, `"width" must be > 0`},
		{"CropZeroHeight", "crop", `{"source":"a","width":1,"height":0}`, `"height" must be > 0`},
		{"CropNegativeHeight", "crop", `{"source":"a","width":1,"height":-5}`, `"height" must be > 0`},
		{"CropNegativeX", "crop", `{"source":"a","x":-1,"width":1,"height":1}`, `"x" must be >= 0, got -1`},
		{"CropNegativeY", "crop", `{"source":"a","y":-2,"width":1,"height":1}`, `"y" must be >= 0, got -2`},
		{"CropWidthOverSideMax", "crop", `{"source":"a","width":16385,"height":1}`, `"width" must be at most 16384`},
		{"CropXOverSideMax", "crop", `{"source":"a","x":99999999999,"width":1,"height":1}`, `"x" must be at most 16384`},
		{"CropWidthFraction", "crop", `{"source":"a","width":1.5,"height":1}`, `"width" must be an integer, got number 1.5`},
		{"CropWidthString", "crop", `{"source":"a","width":"10","height":1}`, `"width" must be an integer, got string`},
		{"CropWidthHuge", "crop", `{"source":"a","width":1e30,"height":1}`, `"width" must be an integer`},
		{"CropXBool", "crop", `{"source":"a","x":true,"width":1,"height":1}`, `"x" must be an integer, got bool`},
		// upscale
		{"UpscaleFactor3", "upscale", `{"source":"a","factor":3}`, `"factor" must be 2 or 4, got 3`},
		{"UpscaleFactor1", "upscale", `{"source":"a","factor":1}`, `"factor" must be 2 or 4`},
		{"UpscaleFactor8", "upscale", `{"source":"a","factor":8}`, `"factor" must be 2 or 4`},
		{"UpscaleMissingFactor", "upscale", `{"source":"a"}`, `"factor" must be 2 or 4, got 0`},
		{"UpscaleFactorString", "upscale", `{"source":"a","factor":"2"}`, `"factor" must be an integer, got string`},
		{"UpscaleFactorFraction", "upscale", `{"source":"a","factor":2.5}`, `"factor" must be an integer`},
		// expand
		{"ExpandNegativeTop", "expand", `{"source":"a","top":-1,"left":2}`, `"top" must be >= 0, got -1`},
		{"ExpandNegativeRight", "expand", `{"source":"a","right":-1}`, `"right" must be >= 0`},
		{"ExpandNegativeBottom", "expand", `{"source":"a","bottom":-3}`, `"bottom" must be >= 0`},
		{"ExpandNegativeLeft", "expand", `{"source":"a","left":-4}`, `"left" must be >= 0`},
		{"ExpandAllZero", "expand", `{"source":"a","top":0,"right":0,"bottom":0,"left":0}`, "at least one must be > 0"},
		{"ExpandNoSides", "expand", `{"source":"a","fill":"#000000"}`, "at least one must be > 0"},
		{"ExpandSideOverSideMax", "expand", `{"source":"a","left":16385}`, `"left" must be at most 16384`},
		{"ExpandSideString", "expand", `{"source":"a","left":"4"}`, `"left" must be an integer, got string`},
		{"ExpandFillNoHash", "expand", `{"source":"a","left":1,"fill":"112233"}`, `"fill" must be a hex colour`},
		{"ExpandFillShortHex", "expand", `{"source":"a","left":1,"fill":"#fff"}`, `"fill" must be a hex colour`},
		{"ExpandFillSevenDigits", "expand", `{"source":"a","left":1,"fill":"#1122334"}`, `"fill" must be a hex colour`},
		{"ExpandFillNotHex", "expand", `{"source":"a","left":1,"fill":"#gggggg"}`, `"fill" must be a hex colour`},
		{"ExpandFillSign", "expand", `{"source":"a","left":1,"fill":"#+12233"}`, `"fill" must be a hex colour`},
		{"ExpandFillName", "expand", `{"source":"a","left":1,"fill":"red"}`, `"fill" must be a hex colour "#rrggbb" or "#rrggbbaa", got "red"`},
		{"ExpandFillNumber", "expand", `{"source":"a","left":1,"fill":255}`, `"fill" must be a string, got number`},
		// adjust
		{"AdjustNothing", "adjust", `{"source":"a"}`, "at least one of"},
		{"AdjustNulls", "adjust", `{"source":"a","brightness":null}`, "at least one of"},
		{"AdjustBrightnessHigh", "adjust", `{"source":"a","brightness":100.5}`, `"brightness" must be a percentage from -100 to 100, got 100.5`},
		{"AdjustBrightnessLow", "adjust", `{"source":"a","brightness":-101}`, `"brightness" must be a percentage`},
		{"AdjustContrastHigh", "adjust", `{"source":"a","contrast":150}`, `"contrast" must be a percentage`},
		{"AdjustContrastLow", "adjust", `{"source":"a","contrast":-1000}`, `"contrast" must be a percentage`},
		{"AdjustSaturationHigh", "adjust", `{"source":"a","saturation":101}`, `"saturation" must be a percentage`},
		{"AdjustSaturationLow", "adjust", `{"source":"a","saturation":-101}`, `"saturation" must be a percentage`},
		{"AdjustGammaZero", "adjust", `{"source":"a","gamma":0}`, `"gamma" must be > 0 and <= 10`},
		{"AdjustGammaNegative", "adjust", `{"source":"a","gamma":-1}`, `"gamma" must be > 0`},
		{"AdjustGammaHigh", "adjust", `{"source":"a","gamma":10.01}`, `"gamma" must be > 0 and <= 10 (1 leaves the image unchanged), got 10.01`},
		{"AdjustBrightnessString", "adjust", `{"source":"a","brightness":"10"}`, `"brightness" must be a number, got string`},
		{"AdjustOneBadOfMany", "adjust", `{"source":"a","brightness":10,"gamma":11}`, `"gamma"`},
		// Params that cannot change the image are refused (nothing to charge for).
		{"AdjustZeroGiven", "adjust", `{"source":"a","contrast":0}`, "leave the image unchanged"},
		{"AdjustGammaOne", "adjust", `{"source":"a","gamma":1}`, "leave the image unchanged"},
		{"AdjustAllNeutral", "adjust", `{"source":"a","brightness":0,"contrast":0,"saturation":0,"gamma":1}`, `these adjustments leave the image unchanged: set "brightness", "contrast" or "saturation" to a value other than 0, or "gamma" to a value other than 1`},
		{"AdjustNeutralAndNull", "adjust", `{"source":"a","brightness":0,"gamma":null}`, "leave the image unchanged"},
		{"FilterInvertZero", "filter", `{"source":"a","name":"invert","amount":0}`, `"amount" for invert is the strength in percent; 0 leaves the image unchanged`},
		{"FilterGrayscaleZero", "filter", `{"source":"a","name":"grayscale","amount":0}`, "0 leaves the image unchanged"},
		{"FilterSepiaZero", "filter", `{"source":"a","name":"sepia","amount":0}`, "0 leaves the image unchanged"},
		{"UpscaleFactorOne", "upscale", `{"source":"a","factor":1}`, `"factor" must be 2 or 4, got 1`},
		{"ExpandByZero", "expand", `{"source":"a","top":0}`, "adding nothing leaves the image unchanged"},
		// filter
		{"FilterMissingName", "filter", `{"source":"a"}`, `"name" is required: one of grayscale, sepia, blur, sharpen, invert`},
		{"FilterUnknownName", "filter", `{"source":"a","name":"emboss"}`, `"name" must be one of grayscale, sepia, blur, sharpen, invert, got "emboss"`},
		{"FilterNameWrongCase", "filter", `{"source":"a","name":"Blur"}`, `"name" must be one of`},
		{"FilterNameNotString", "filter", `{"source":"a","name":1}`, `"name" must be a string`},
		{"FilterBlurZero", "filter", `{"source":"a","name":"blur","amount":0}`, `"amount" for blur is the sigma in pixels and must be > 0 and <= 50, got 0`},
		{"FilterBlurNegative", "filter", `{"source":"a","name":"blur","amount":-2}`, `"amount" for blur`},
		{"FilterBlurHigh", "filter", `{"source":"a","name":"blur","amount":50.5}`, `"amount" for blur`},
		{"FilterSharpenZero", "filter", `{"source":"a","name":"sharpen","amount":0}`, `"amount" for sharpen`},
		{"FilterSharpenHigh", "filter", `{"source":"a","name":"sharpen","amount":51}`, `"amount" for sharpen`},
		{"FilterSepiaHigh", "filter", `{"source":"a","name":"sepia","amount":101}`, `"amount" for sepia is the strength in percent and must be from 0 to 100, got 101`},
		{"FilterGrayscaleNegative", "filter", `{"source":"a","name":"grayscale","amount":-1}`, `"amount" for grayscale`},
		{"FilterInvertHigh", "filter", `{"source":"a","name":"invert","amount":1000}`, `"amount" for invert`},
		{"FilterAmountString", "filter", `{"source":"a","name":"blur","amount":"2"}`, `"amount" must be a number, got string`},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			wantInvalid(t, Validate(tc.action, params(tc.params)), tc.msg)
		})
	}
}

func TestValidateForSource(t *testing.T) {
	valid := []struct{ name, action, params string }{
		{"CropInside", "crop", `{"source":"a","x":1,"y":1,"width":39,"height":29}`},
		{"CropFullWidthNotHeight", "crop", `{"source":"a","width":40,"height":29}`},
		{"CropOnePixel", "crop", `{"source":"a","x":39,"y":29,"width":1,"height":1}`},
		{"NotCrop", "upscale", `{"source":"a","factor":2}`},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			if err := ValidateForSource(tc.action, params(tc.params), 40, 30); err != nil {
				t.Fatalf("ValidateForSource: %v", err)
			}
		})
	}
	invalid := []struct{ name, action, params, msg string }{
		{"CropWholeImage", "crop", `{"source":"a","x":0,"y":0,"width":40,"height":30}`,
			"crop rectangle x=0 y=0 width=40 height=30 is the whole 40x30 image, which leaves it unchanged: choose a smaller rectangle"},
		{"CropWholeDefaultOrigin", "crop", `{"source":"a","width":40,"height":30}`, "is the whole 40x30 image"},
		{"CropOutside", "crop", `{"source":"a","x":1,"width":40,"height":30}`, "not inside the 40x30 image"},
		{"CropTooTall", "crop", `{"source":"a","width":10,"height":31}`, "not inside the 40x30 image"},
		{"InvalidParams", "crop", `{"source":"a","width":0,"height":1}`, `"width" must be > 0`},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			wantInvalid(t, ValidateForSource(tc.action, params(tc.params), 40, 30), tc.msg)
		})
	}
}

func TestValidateCoversActions(t *testing.T) {
	// Every advertised action has a parser.
	for _, a := range Actions {
		err := Validate(a, params(`{}`))
		wantInvalid(t, err, `"source" is required`)
	}
}

func TestSourceID(t *testing.T) {
	ok := []struct{ name, params, want string }{
		{"Plain", `{"source":"asset_123"}`, "asset_123"},
		{"WithActionParams", `{"source":"b","factor":2,"anything":true}`, "b"},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SourceID(params(tc.params))
			if err != nil || got != tc.want {
				t.Fatalf("SourceID = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	bad := []struct{ name, params, msg string }{
		{"Missing", `{"factor":2}`, `"source" is required`},
		{"Empty", `{"source":""}`, `"source" is required`},
		{"NotString", `{"source":5}`, `"source" must be a string`},
		{"NoParams", ``, "params are required"},
		{"NotJSON", `{`, "not valid JSON"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := SourceID(params(tc.params))
			wantInvalid(t, err, tc.msg)
		})
	}
}
