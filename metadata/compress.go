package metadata

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Compression levels of Compress. They are part of the output's identity:
// changing one changes every rewritten file's checksum, so every client
// downloads the metadata again once.
const (
	gzipLevel = gzip.DefaultCompression
	zstdLevel = zstd.SpeedDefault
)

// Compress returns a writer that compresses into w with codec c (None, Gzip,
// Xz or Zstd). Close flushes the codec's trailer; it does not close w.
//
// The output is a function of the input bytes only: the gzip header has no
// name and a zero mtime, levels are fixed, and the zstd encoder runs on one
// goroutine (its concurrent mode may cut blocks differently). Same input,
// same library versions → byte-identical output, which is what keeps a
// rewritten repomd.xml stable across restarts.
func Compress(w io.Writer, c Codec) (io.WriteCloser, error) {
	switch c {
	case None:
		return nopWC{w}, nil
	case Gzip:
		zw, err := gzip.NewWriterLevel(w, gzipLevel)
		if err != nil {
			return nil, err
		}
		// No name, mtime 0 ("no time stamp" in RFC 1952; the zero
		// time.Time would be written as a date in 2042). OS is fixed by
		// the library.
		zw.ModTime = time.Unix(0, 0)
		return zw, nil
	case Xz:
		var cfg xz.WriterConfig // library defaults: LZMA2, CRC64, 8 MiB dictionary
		return cfg.NewWriter(w)
	case Zstd:
		return zstd.NewWriter(w,
			zstd.WithEncoderLevel(zstdLevel),
			zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderCRC(true))
	default:
		return nil, fmt.Errorf("cannot write %q files (gz, xz and zst are supported)", c)
	}
}

type nopWC struct{ io.Writer }

func (nopWC) Close() error { return nil }

// FileInfo describes a metadata file as repomd.xml lists it.
type FileInfo struct {
	Codec        Codec
	Checksum     Checksum // sha256 of the file as stored (compressed)
	Size         int64    // bytes of the file as stored
	OpenChecksum Checksum // sha256 of the uncompressed content
	OpenSize     int64    // bytes of the uncompressed content
}

// Href is the location of the file for a record of type typ, in the
// unique-file-name form createrepo_c uses: repodata/<sha256>-<typ><ext><codec>,
// e.g. Href("primary", ".xml") = "repodata/3f…-primary.xml.gz". The codec
// suffix is the truth about the compression, as libsolv picks its decoder by
// it.
func (fi FileInfo) Href(typ, ext string) string {
	return "repodata/" + fi.Checksum.Value + "-" + typ + ext + string(fi.Codec)
}

// FileWriter compresses what is written to it into an underlying writer and,
// in the same pass, computes the FileInfo of the result.
type FileWriter struct {
	codec    Codec
	buf      *bufio.Writer // in front of the hashing and the codec
	zw       io.WriteCloser
	openSum  hash.Hash
	openSize int64
	sum      hash.Hash
	size     byteCounter
	closed   bool
	info     FileInfo
}

// NewFileWriter returns a FileWriter that writes codec-compressed data to w.
func NewFileWriter(w io.Writer, codec Codec) (*FileWriter, error) {
	fw := &FileWriter{codec: codec, openSum: sha256.New(), sum: sha256.New()}
	zw, err := Compress(io.MultiWriter(w, fw.sum, &fw.size), codec)
	if err != nil {
		return nil, err
	}
	fw.zw = zw
	fw.buf = bufio.NewWriterSize(writeFunc(fw.writeOpen), 64<<10)
	return fw, nil
}

func (fw *FileWriter) writeOpen(p []byte) (int, error) {
	fw.openSum.Write(p)
	fw.openSize += int64(len(p))
	return fw.zw.Write(p)
}

// Write writes uncompressed bytes.
func (fw *FileWriter) Write(p []byte) (int, error) { return fw.buf.Write(p) }

// WriteString writes an uncompressed string.
func (fw *FileWriter) WriteString(s string) (int, error) { return fw.buf.WriteString(s) }

// Close flushes the codec and fixes the FileInfo. It does not close the
// underlying writer.
func (fw *FileWriter) Close() error {
	if fw.closed {
		return nil
	}
	fw.closed = true
	if err := fw.buf.Flush(); err != nil {
		return err
	}
	if err := fw.zw.Close(); err != nil {
		return err
	}
	fw.info = FileInfo{
		Codec:        fw.codec,
		Checksum:     Checksum{Type: "sha256", Value: hex.EncodeToString(fw.sum.Sum(nil))},
		Size:         fw.size.n,
		OpenChecksum: Checksum{Type: "sha256", Value: hex.EncodeToString(fw.openSum.Sum(nil))},
		OpenSize:     fw.openSize,
	}
	return nil
}

// Info returns the description of the written file; valid after Close.
func (fw *FileWriter) Info() FileInfo { return fw.info }

type byteCounter struct{ n int64 }

func (c *byteCounter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

type writeFunc func([]byte) (int, error)

func (f writeFunc) Write(p []byte) (int, error) { return f(p) }
