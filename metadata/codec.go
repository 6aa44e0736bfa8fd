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
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(max(limit, 1<<20))))
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %v", ErrMalformed, err)
		}
		rc = zr.IOReadCloser()
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
