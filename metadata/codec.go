package metadata

import (
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// ErrTooLarge marks input over a configured size limit.
var ErrTooLarge = errors.New("metadata too large")

// Codec names a compression format by the file suffix rpm-md uses for it.
type Codec string

// The compressions createrepo_c writes.
const (
	None  Codec = ""
	Gzip  Codec = ".gz"
	Xz    Codec = ".xz"
	Zstd  Codec = ".zst"
	Bzip2 Codec = ".bz2"
	Zck   Codec = ".zck"
)

// CodecOf returns the codec an href's suffix announces. libsolv chooses
// its decoder by this suffix, so it is the truth for us too.
func CodecOf(href string) Codec {
	for _, c := range []Codec{Gzip, Xz, Zstd, Bzip2, Zck} {
		if strings.HasSuffix(href, string(c)) {
			return c
		}
	}
	return None
}

// Decompress wraps r in a decoder for codec c. The result fails with
// ErrTooLarge once more than limit decompressed bytes are read.
func Decompress(r io.Reader, c Codec, limit int64) (io.ReadCloser, error) {
	var rc io.ReadCloser
	switch c {
	case None:
		rc = io.NopCloser(r)
	case Gzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrMalformed, err)
		}
		rc = zr
	case Xz:
		zr, err := xz.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%w: xz: %v", ErrMalformed, err)
		}
		rc = io.NopCloser(zr)
	case Zstd:
		// The decoder allocates a frame's whole window up front, so the
		// window must be bounded; 8 MiB is what zstd uses up to level 19,
		// so ordinary files decode whatever the limit.
		src := &countingReader{r: r}
		zr, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(max(limit, zstdMinWindow))))
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %v", ErrMalformed, err)
		}
		rc = &zstdReader{zr: zr, src: src}
	case Bzip2:
		rc = io.NopCloser(bzip2.NewReader(r))
	default:
		return nil, fmt.Errorf("%w: cannot decompress %q files", ErrMalformed, c)
	}
	return &limitedReadCloser{rc: rc, left: limit}, nil
}

type limitedReadCloser struct {
	rc   io.ReadCloser
	left int64
}

func (l *limitedReadCloser) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, fmt.Errorf("%w: decompressed data exceeds the limit", ErrTooLarge)
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.rc.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n, fmt.Errorf("%w: decompressed data exceeds the limit", ErrTooLarge)
	}
	return n, err
}

func (l *limitedReadCloser) Close() error { return l.rc.Close() }

// zstdMinWindow is the window a zstd frame may always use (see Decompress).
const zstdMinWindow = 8 << 20

// zstdReader reports the decoder's resource limits as ErrTooLarge and an
// empty input as malformed (the decoder takes it for zero frames; the zstd
// tool calls it an unexpected end of file).
type zstdReader struct {
	zr  *zstd.Decoder
	src *countingReader
}

func (z *zstdReader) Read(p []byte) (int, error) {
	n, err := z.zr.Read(p)
	switch {
	case errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded):
		err = fmt.Errorf("%w: zstd: %v", ErrTooLarge, err)
	case err == io.EOF && z.src.n == 0:
		err = fmt.Errorf("%w: zstd: empty input", ErrMalformed)
	}
	return n, err
}

func (z *zstdReader) Close() error {
	z.zr.Close()
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
