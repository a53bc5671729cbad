package imageops

import "encoding/binary"

// jpegOrientation returns the EXIF orientation (1–8) of a JPEG, or 0 when
// there is none. It follows imaging's reader (used by Apply's decode) so
// that Inspect reports the same size Apply sees: only the first APP1
// segment is looked at, and the tag is read from IFD0.
func jpegOrientation(data []byte) int {
	if len(data) < 4 || data[0] != 0xff || data[1] != 0xd8 {
		return 0
	}
	p := 2
	for {
		if p+4 > len(data) || data[p] != 0xff {
			return 0
		}
		marker := data[p+1]
		size := int(binary.BigEndian.Uint16(data[p+2:]))
		if size < 2 || p+2+size > len(data) {
			return 0
		}
		if marker == 0xe1 { // APP1
			return exifOrientation(data[p+4 : p+2+size])
		}
		if marker == 0xda { // start of scan: no metadata follows
			return 0
		}
		p += 2 + size
	}
}

// exifOrientation reads the orientation tag from an APP1 payload.
func exifOrientation(seg []byte) int {
	const headerLen = 6 // "Exif\x00\x00"
	if len(seg) < headerLen+8 || string(seg[:4]) != "Exif" {
		return 0
	}
	tiff := seg[headerLen:]
	var order binary.ByteOrder
	switch string(tiff[:2]) {
	case "MM":
		order = binary.BigEndian
	case "II":
		order = binary.LittleEndian
	default:
		return 0
	}
	ifd := int(order.Uint32(tiff[4:]))
	if ifd < 8 || ifd+2 > len(tiff) {
		return 0
	}
	n := int(order.Uint16(tiff[ifd:]))
	for i := 0; i < n; i++ {
		e := ifd + 2 + 12*i
		if e+12 > len(tiff) {
			return 0
		}
		if order.Uint16(tiff[e:]) != 0x0112 {
			continue
		}
		v := int(order.Uint16(tiff[e+8:]))
		if v < 1 || v > 8 {
			return 0
		}
		return v
	}
	return 0
}
