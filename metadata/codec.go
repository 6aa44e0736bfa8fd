package metadata

import (
	"bytes"
	"compress/bzip2"
	"encoding/binary"
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

// Default memory limits of the decoders and scanners (see Limits).
const (
	// DefaultMaxXzDict bounds the LZMA2 dictionary an xz block may ask
	// for: xz -9 and -9e use 64 MiB, createrepo_c writes xz -5 (8 MiB).
	DefaultMaxXzDict = 64 << 20
	// DefaultMaxZstdWindow bounds a zstd frame's window: zstd -19 uses
	// 8 MiB, the level 10 of createrepo_c 1.x 4 MiB; only --ultra levels
	// and --long go beyond.
	DefaultMaxZstdWindow = 8 << 20
	// DefaultMaxElement bounds one <package> element, and any other
	// single piece of a package file outside one (a text node, a comment):
	// the biggest <package> of CentOS Stream 9 AppStream is under 1 MiB.
	DefaultMaxElement = 16 << 20
)

// Limits bounds the memory that decoding and scanning upstream metadata may
// take, whatever the input says. A zero field means its default. Input over
// a limit is ErrTooLarge: the file is refused, not truncated.
type Limits struct {
	MaxXzDict     int64 // largest LZMA2 dictionary of an xz block
	MaxZstdWindow int64 // largest zstd window (and single-segment frame)
	// MaxElement bounds what a scanner holds at once: a <package> element
	// (or any other element, text node or comment) of primary.xml,
	// filelists.xml and other.xml, and a document of modules.yaml.
	MaxElement int64
}

func (l Limits) xzDict() int64     { return orDefault64(l.MaxXzDict, DefaultMaxXzDict) }
func (l Limits) zstdWindow() int64 { return orDefault64(l.MaxZstdWindow, DefaultMaxZstdWindow) }
func (l Limits) element() int64    { return orDefault64(l.MaxElement, DefaultMaxElement) }

func orDefault64(v, def int64) int64 {
	if v <= 0 {
		return def
	}
	return v
}

// Decompress wraps r in a decoder for codec c, within the default Limits.
// The result fails with ErrTooLarge once more than limit decompressed bytes
// are read.
func Decompress(r io.Reader, c Codec, limit int64) (io.ReadCloser, error) {
	return Limits{}.Decompress(r, c, limit)
}

// Decompress wraps r in a decoder for codec c. The result fails with
// ErrTooLarge once more than limit decompressed bytes are read, and before
// a decoder allocates more than l allows: an xz block asking for a
// dictionary over MaxXzDict, a zstd frame with a window over MaxZstdWindow.
// gzip needs 32 KiB whatever the input, bzip2 at most 900 kB blocks (Go's
// decoder keeps one block and a 4-byte index per byte of it: under 5 MB).
func (l Limits) Decompress(r io.Reader, c Codec, limit int64) (io.ReadCloser, error) {
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
		// The library allocates the dictionary a block header asks for,
		// up to 4 GiB, so block headers are checked before it sees them.
		zr, err := xz.NewReader(newXzGuard(r, l.xzDict()))
		if err != nil {
			if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrMalformed) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: xz: %v", ErrMalformed, err)
		}
		rc = io.NopCloser(zr)
	case Zstd:
		// The decoder allocates a frame's whole window up front (for a
		// single-segment frame, its declared content size), so both are
		// bounded by the window limit.
		w := uint64(l.zstdWindow())
		src := &countingReader{r: r}
		zr, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(max(w, zstd.MinWindowSize)), zstd.WithDecoderMaxMemory(max(w, zstd.MinWindowSize)))
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

// xzGuard passes an xz file through, checking its structure on the way
// (stream headers, block headers, LZMA2 chunk headers, indexes, footers) so
// that no block header reaches the decoder before its dictionary size is
// known to be within the limit. The LZMA2 payloads between chunk headers
// pass unchecked; the decoder checks them, and the checksums.
type xzGuard struct {
	r       io.Reader
	maxDict int64
	buf     []byte // buf[:ok] checked, to pass on; buf[ok:] read, not yet checked
	ok      int
	pass    int64 // bytes after buf[:ok] to pass on unchecked
	err     error

	state     xzState
	first     bool   // no stream header seen yet
	checkSize int    // bytes of each block's check
	comp      int64  // compressed bytes of the current block
	records   uint64 // index records whose varints are still to come
	varints   int    // varints left in the current record
	count     uint64 // the index's record count, being read
	shift     uint
	indexSize int64
}

type xzState uint8

const (
	xzStreamHeader xzState = iota
	xzStreamPadding
	xzBlock
	xzChunk
	xzBlockPadding
	xzIndexCount
	xzIndexRecords
	xzIndexPadding
	xzFooter
)

func newXzGuard(r io.Reader, maxDict int64) *xzGuard {
	return &xzGuard{r: r, maxDict: maxDict, buf: make([]byte, 0, 4096), first: true}
}

func (g *xzGuard) Read(p []byte) (int, error) {
	for g.ok == 0 && g.pass == 0 && g.err == nil {
		g.err = g.step()
	}
	switch {
	case len(p) == 0:
		return 0, nil
	case g.ok > 0:
		n := copy(p, g.buf[:g.ok])
		g.consume(n)
		g.ok -= n
		return n, nil
	case g.pass > 0:
		if len(g.buf) > 0 {
			n := copy(p, g.buf[:min(int64(len(g.buf)), g.pass)])
			g.consume(n)
			g.pass -= int64(n)
			return n, nil
		}
		n, err := g.r.Read(p[:min(int64(len(p)), g.pass)])
		g.pass -= int64(n)
		if err == io.EOF && g.pass > 0 {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	}
	return 0, g.err
}

func (g *xzGuard) consume(n int) {
	g.buf = g.buf[:copy(g.buf, g.buf[n:])]
}

// fill reads until buf holds n bytes. At the end of the input it returns
// io.EOF if nothing at all was read, and otherwise passes on what is there
// for the decoder to find truncated.
func (g *xzGuard) fill(n int) error {
	for len(g.buf) < n {
		if cap(g.buf) < n {
			g.buf = append(g.buf[:cap(g.buf)], make([]byte, n-cap(g.buf))...)[:len(g.buf)]
		}
		m, err := g.r.Read(g.buf[len(g.buf):cap(g.buf)])
		g.buf = g.buf[:len(g.buf)+m]
		if err == io.EOF && len(g.buf) < n {
			if len(g.buf) == 0 {
				return io.EOF
			}
			g.ok = len(g.buf)
			return errXzShort
		}
		if err != nil && err != io.EOF {
			return err
		}
	}
	return nil
}

var errXzShort = errors.New("truncated")

func (g *xzGuard) malformed(format string, args ...any) error {
	return fmt.Errorf("%w: xz: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// step checks the next structure of the file, at buf[0:], and marks it
// to pass on.
func (g *xzGuard) step() error {
	need := func(n int) error {
		err := g.fill(n)
		if err == errXzShort {
			return nil // passed on as it is; the next step sees the end
		}
		return err
	}
	switch g.state {
	case xzStreamHeader:
		if err := g.fill(12); err != nil {
			if err == io.EOF && g.first {
				return g.malformed("empty input")
			}
			if err == errXzShort {
				return nil
			}
			return err
		}
		h := g.buf[:12]
		if !bytes.HasPrefix(h, []byte("\xfd7zXZ\x00")) {
			return g.malformed("not an xz stream")
		}
		if h[6] != 0 || h[7] > 0x0f {
			return g.malformed("unsupported stream flags %#x %#x", h[6], h[7])
		}
		g.checkSize = [...]int{0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64}[h[7]]
		g.first = false
		g.ok, g.state = 12, xzBlock
	case xzStreamPadding:
		if err := g.fill(1); err != nil {
			return err // io.EOF: the end of the file
		}
		if g.buf[0] != 0 {
			g.state = xzStreamHeader
			return nil
		}
		if err := need(4); err != nil || g.ok > 0 {
			return err
		}
		if !bytes.Equal(g.buf[:4], []byte{0, 0, 0, 0}) {
			return g.malformed("bad stream padding")
		}
		g.ok = 4
	case xzBlock:
		if err := need(1); err != nil || g.ok > 0 {
			return err
		}
		if g.buf[0] == 0 {
			g.ok, g.state, g.indexSize, g.count, g.shift = 1, xzIndexCount, 1, 0, 0
			return nil
		}
		size := (int(g.buf[0]) + 1) * 4
		if err := need(size); err != nil || g.ok > 0 {
			return err
		}
		if err := g.checkBlockHeader(g.buf[:size]); err != nil {
			return err
		}
		g.ok, g.state, g.comp = size, xzChunk, 0
	case xzChunk:
		if err := need(1); err != nil || g.ok > 0 {
			return err
		}
		c := g.buf[0]
		switch {
		case c == 0:
			g.ok, g.state = 1, xzBlockPadding
			g.comp++
		case c == 1 || c == 2:
			if err := need(3); err != nil || g.ok > 0 {
				return err
			}
			g.ok, g.pass = 3, int64(g.buf[1])<<8|int64(g.buf[2])+1
			g.comp += 3 + g.pass
		case c < 0x80:
			return g.malformed("bad LZMA2 chunk %#x", c)
		default:
			h := 5
			if c >= 0xc0 {
				h = 6 // new properties
			}
			if err := need(h); err != nil || g.ok > 0 {
				return err
			}
			g.ok, g.pass = h, int64(g.buf[3])<<8|int64(g.buf[4])+1
			g.comp += int64(h) + g.pass
		}
	case xzBlockPadding:
		n := int((4-g.comp%4)%4) + g.checkSize
		g.state = xzBlock
		if n > 0 {
			if err := need(n); err != nil || g.ok > 0 {
				return err
			}
			g.ok = n
		}
	case xzIndexCount, xzIndexRecords:
		if g.state == xzIndexRecords && g.varints == 0 {
			if g.records == 0 {
				g.state = xzIndexPadding
				return nil
			}
			g.records--
			g.varints = 2
		}
		if err := need(1); err != nil || g.ok > 0 {
			return err
		}
		b := g.buf[0]
		g.ok = 1
		g.indexSize++
		if g.state == xzIndexCount {
			if g.shift > 56 {
				return g.malformed("bad index")
			}
			g.count |= uint64(b&0x7f) << g.shift
			g.shift += 7
			if b&0x80 == 0 {
				g.records, g.varints, g.state = g.count, 0, xzIndexRecords
			}
		} else if b&0x80 == 0 {
			g.varints--
		}
	case xzIndexPadding:
		n := int((4-g.indexSize%4)%4) + 4
		if err := need(n); err != nil || g.ok > 0 {
			return err
		}
		g.ok, g.state = n, xzFooter
	case xzFooter:
		if err := need(12); err != nil || g.ok > 0 {
			return err
		}
		if string(g.buf[10:12]) != "YZ" {
			return g.malformed("bad stream footer")
		}
		g.ok, g.state = 12, xzStreamPadding
	}
	return nil
}

// checkBlockHeader checks the filters of a block header: the last must be
// LZMA2, and its dictionary within the limit.
func (g *xzGuard) checkBlockHeader(h []byte) error {
	flags := h[1]
	if flags&0x3c != 0 {
		return g.malformed("bad block flags %#x", flags)
	}
	body := h[2 : len(h)-4] // the CRC32 is the decoder's to check
	p := 0
	varint := func() (uint64, error) {
		v, n := binary.Uvarint(body[p:])
		if n <= 0 {
			return 0, g.malformed("bad block header")
		}
		p += n
		return v, nil
	}
	for _, bit := range []byte{0x40, 0x80} { // compressed and uncompressed size
		if flags&bit != 0 {
			if _, err := varint(); err != nil {
				return err
			}
		}
	}
	var last uint64
	for range int(flags&3) + 1 {
		id, err := varint()
		if err != nil {
			return err
		}
		size, err := varint()
		if err != nil {
			return err
		}
		if size > uint64(len(body)-p) {
			return g.malformed("bad block header")
		}
		props := body[p : p+int(size)]
		p += int(size)
		if id == 0x21 {
			if len(props) != 1 || props[0] > 40 {
				return g.malformed("bad LZMA2 properties")
			}
			dict := int64(0xffffffff)
			if b := props[0]; b < 40 {
				dict = int64(2|b&1) << (b/2 + 11)
			}
			if dict > g.maxDict {
				return fmt.Errorf("%w: xz: a block asks for a %d MiB dictionary, over the %d MiB limit", ErrTooLarge, dict>>20, g.maxDict>>20)
			}
		}
		last = id
	}
	if last != 0x21 {
		return g.malformed("block filter chain does not end in LZMA2")
	}
	return nil
}
