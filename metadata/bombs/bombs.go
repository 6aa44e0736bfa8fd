// Package bombs makes hostile inputs for the decoders and scanners of
// package metadata: files that are small compressed but ask for huge
// memory, as an upstream mirror could serve them. Tests of any package use
// them; nothing outside tests should.
//
// Small ones are built in memory; big ones are written as streams
// (GzipFill), so that a test can make a 5 GB bomb without holding it.
package bombs

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
	"io"
	"strings"
)

// XzDict returns an 88-byte xz file whose only block asks for an LZMA2
// dictionary of the given code (the xz format's props byte, 0..40: 39 is
// 3 GiB, 40 is 4 GiB - 1, 22 is 8 MiB). The file is otherwise valid: its
// 36 bytes of content are stored uncompressed, and every CRC is right.
func XzDict(code byte) []byte {
	content := []byte(`<metadata packages="0"/>` + strings.Repeat(" ", 11) + "\n")
	var b []byte
	le32 := func(v uint32) { b = binary.LittleEndian.AppendUint32(b, v) }

	// Stream header: magic, flags (check type CRC32), CRC32 of the flags.
	flags := []byte{0, 1}
	b = append(b, "\xfd7zXZ\x00"...)
	b = append(b, flags...)
	le32(crc32.ChecksumIEEE(flags))

	// Block header: size, flags (one filter, no sizes), LZMA2 with its
	// dictionary byte, padding, CRC32.
	hdr := []byte{2, 0, 0x21, 1, code, 0, 0, 0}
	b = append(b, hdr...)
	le32(crc32.ChecksumIEEE(hdr))

	// LZMA2: one uncompressed chunk (with dictionary reset), end marker.
	start := len(b)
	b = append(b, 1, byte((len(content)-1)>>8), byte(len(content)-1))
	b = append(b, content...)
	b = append(b, 0)
	comp := len(b) - start
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	le32(crc32.ChecksumIEEE(content))

	// Index: one record (unpadded size, uncompressed size), padding, CRC32.
	index := []byte{0, 1}
	index = binary.AppendUvarint(index, uint64(len(hdr)+4+comp+4))
	index = binary.AppendUvarint(index, uint64(len(content)))
	for len(index)%4 != 0 {
		index = append(index, 0)
	}
	index = binary.LittleEndian.AppendUint32(index, crc32.ChecksumIEEE(index))
	b = append(b, index...)

	// Footer: CRC32 of backward size and flags, backward size, flags, magic.
	tail := binary.LittleEndian.AppendUint32(nil, uint32(len(index)/4-1))
	tail = append(tail, flags...)
	le32(crc32.ChecksumIEEE(tail))
	b = append(b, tail...)
	return append(b, "YZ"...)
}

// XzDictBomb is XzDict(39): 88 bytes that ask for a 3 GiB dictionary.
func XzDictBomb() []byte { return XzDict(39) }

// ZstdWindow returns a 25-byte zstd frame that declares a window of
// 2^log bytes (10..41) and holds 16 bytes in one raw block.
func ZstdWindow(log uint) []byte {
	b := []byte{0x28, 0xb5, 0x2f, 0xfd, 0, byte(log-10) << 3}
	content := []byte("<metadata/>\n    ")
	bh := uint32(1 | len(content)<<3) // last block, raw, size
	b = append(b, byte(bh), byte(bh>>8), byte(bh>>16))
	return append(b, content...)
}

// ZstdWindowBomb is ZstdWindow(29): 25 bytes that declare a 512 MiB window.
func ZstdWindowBomb() []byte { return ZstdWindow(29) }

// GzipFill writes to w a gzip file of prefix, then n copies of the byte
// fill, then suffix. It costs about 1 KiB of output per MiB of fill and
// little time: a middle part is compressed once and repeated, which is
// valid deflate because its back-references only reach fill bytes.
func GzipFill(w io.Writer, prefix []byte, fill byte, n int64, suffix []byte) error {
	const chunk = 1 << 20
	buf := bytes.Repeat([]byte{fill}, chunk)
	sum := crc32.Update(0, crc32.IEEETable, prefix)

	var z bytes.Buffer
	fw, err := flate.NewWriter(&z, flate.BestCompression)
	if err != nil {
		return err
	}
	take := func() []byte { out := bytes.Clone(z.Bytes()); z.Reset(); return out }
	// The head: the prefix and enough fill to fill the 32 KiB window.
	head := min(n, 64<<10)
	fw.Write(prefix)
	fw.Write(buf[:head])
	fw.Flush()
	sum = crc32.Update(sum, crc32.IEEETable, buf[:head])
	if _, err := w.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}); err != nil {
		return err
	}
	if _, err := w.Write(take()); err != nil {
		return err
	}
	left := n - head
	if left >= chunk {
		fw.Write(buf)
		fw.Flush()
		middle := take()
		for ; left >= chunk; left -= chunk {
			if _, err := w.Write(middle); err != nil {
				return err
			}
			sum = crc32.Update(sum, crc32.IEEETable, buf)
		}
	}
	fw.Write(buf[:left])
	fw.Write(suffix)
	if err := fw.Close(); err != nil {
		return err
	}
	sum = crc32.Update(sum, crc32.IEEETable, buf[:left])
	sum = crc32.Update(sum, crc32.IEEETable, suffix)
	trailer := binary.LittleEndian.AppendUint32(nil, sum)
	trailer = binary.LittleEndian.AppendUint32(trailer, uint32(int64(len(prefix))+n+int64(len(suffix))))
	if _, err := w.Write(take()); err != nil {
		return err
	}
	_, err = w.Write(trailer)
	return err
}

// GzipZeros writes a gzip file of n zero bytes (5 GB make 5 MB).
func GzipZeros(w io.Writer, n int64) error { return GzipFill(w, nil, 0, n, nil) }

// The parts of a valid primary.xml around a bomb's fill.
const (
	primaryHead = `<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="1">
`
	packageHead = `<package type="rpm">
  <name>bomb</name>
  <arch>noarch</arch>
  <version epoch="0" ver="1" rel="1"/>
  <checksum type="sha256" pkgid="YES">` + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + `</checksum>
  <summary>bomb</summary>
  <description>`
	packageTail = `</description>
  <size package="1" installed="1" archive="1"/>
  <location href="Packages/bomb-1-1.noarch.rpm"/>
  <format/>
</package>
</metadata>
`
)

// WhitespacePrimary returns the prefix and suffix of a valid primary.xml
// that has n bytes of white space between its root's start tag and its one
// package: one text node of n bytes.
func WhitespacePrimary() (prefix, suffix []byte) {
	return []byte(primaryHead), []byte(packageHead + packageTail)
}

// HugePackagePrimary returns the prefix and suffix of a valid primary.xml
// whose one package has a description of n fill bytes ('x' is fine): one
// <package> element of n bytes and more.
func HugePackagePrimary() (prefix, suffix []byte) {
	return []byte(primaryHead + packageHead), []byte(packageTail)
}

// Fill returns a reader of prefix, n copies of fill and suffix, without
// holding them: the uncompressed form of what GzipFill writes.
func Fill(prefix []byte, fill byte, n int64, suffix []byte) io.Reader {
	return io.MultiReader(bytes.NewReader(prefix), io.LimitReader(repeatReader(fill), n), bytes.NewReader(suffix))
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}
