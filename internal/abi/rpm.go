package abi

import (
	"bufio"
	"compress/bzip2"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/cavaliergopher/cpio"
	"github.com/cavaliergopher/rpm"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"

	"github.com/dnfproxy/dnfproxy/metadata"
)

// ErrBadPackage is wrapped by every error about the content of an RPM: not
// an RPM, a corrupt header, an unknown compressor, a truncated payload.
var ErrBadPackage = errors.New("bad RPM package")

// ErrTooLarge is wrapped when an input passes one of the size caps.
var ErrTooLarge = errors.New("over the size limit")

// RPM header tags read here (rpm's rpmtag.h).
const (
	tagFileClass = 1141
	tagClassDict = 1142
)

// zstdMaxWindow bounds the zstd decoder's window: rpm writes level 19
// (8 MiB windows) and, with long mode, up to 128 MiB.
const zstdMaxWindow = 256 << 20

// rpmHeader is what the scanner needs from an RPM's header.
type rpmHeader struct {
	ID         metadata.PackageID
	Compressor string
	// elfPaths lists the files whose rpm file class says ELF; nil when the
	// header has no file classes (then every file is sniffed).
	elfPaths map[string]bool
	files    []string // the paths the header lists
}

// payloadEntry is one file of an RPM payload, positioned for reading.
type payloadEntry struct {
	Path string // absolute, "/usr/lib64/libfoo.so.1"
	Mode cpio.FileMode
	Size int64
}

// fullReader turns every Read into io.ReadFull: cavaliergopher/rpm reads
// fixed-size header fields with a single Read, which a short read from a
// network or chunked cache stream would corrupt.
type fullReader struct{ r io.Reader }

func (f fullReader) Read(p []byte) (int, error) {
	n, err := io.ReadFull(f.r, p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
		if n > 0 {
			err = nil
		}
	}
	return n, err
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// ctxReader fails reads once ctx is done, so a cancelled analysis stops
// decompressing.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// walkRPM reads the RPM in r: the lead and headers, then the payload, and
// calls fn for every regular file with a reader of its content (valid until
// fn returns; fn need not read it all). It returns the header and the
// number of uncompressed payload bytes read.
//
// When need is not nil and says false for the header, the payload is not
// read at all.
func walkRPM(ctx context.Context, r io.Reader, need func(*rpmHeader) bool, fn func(h *rpmHeader, e payloadEntry, body io.Reader) error) (*rpmHeader, int64, error) {
	br := bufio.NewReaderSize(ctxReader{ctx, r}, 64<<10)
	pkg, err := rpm.Read(fullReader{br})
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		return nil, 0, fmt.Errorf("%w: header: %v", ErrBadPackage, err)
	}
	h := &rpmHeader{
		ID: metadata.PackageID{
			Name: pkg.Name(), Arch: pkg.Architecture(), Version: pkg.Version(), Release: pkg.Release(),
		},
		Compressor: pkg.PayloadCompression(),
	}
	if pkg.Epoch() != 0 {
		h.ID.Epoch = strconv.Itoa(pkg.Epoch())
	}
	if f := pkg.PayloadFormat(); f != "" && f != "cpio" {
		return h, 0, fmt.Errorf("%w: payload format %q (want cpio)", ErrBadPackage, f)
	}
	h.elfPaths = elfPathsFromClasses(pkg)
	for _, f := range pkg.Files() {
		h.files = append(h.files, path.Clean("/"+f.Name()))
	}
	if need != nil && !need(h) {
		return h, 0, nil
	}
	dec, err := decompressor(h.Compressor, br)
	if err != nil {
		return h, 0, err
	}
	defer dec.Close()
	cr := &countingReader{r: dec}
	arc := cpio.NewReader(cr)
	for {
		hdr, err := arc.Next()
		if err == io.EOF {
			return h, cr.n, nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return h, cr.n, ctx.Err()
			}
			return h, cr.n, fmt.Errorf("%w: payload: %v", ErrBadPackage, err)
		}
		if !hdr.Mode.IsRegular() || hdr.Size == 0 {
			continue
		}
		name := "/" + strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		if err := fn(h, payloadEntry{Path: name, Mode: hdr.Mode, Size: hdr.Size}, arc); err != nil {
			return h, cr.n, err
		}
	}
}

// elfPathsFromClasses returns the files that rpm classified as ELF when it
// built the package (FILECLASS indexes CLASSDICT, "ELF 64-bit LSB shared
// object, ..."), or nil when the header lacks the tags or they disagree.
func elfPathsFromClasses(pkg *rpm.Package) map[string]bool {
	classTag, dictTag := pkg.Header.GetTag(tagFileClass), pkg.Header.GetTag(tagClassDict)
	if classTag == nil || dictTag == nil {
		return nil
	}
	classes, dict := classTag.Int64Slice(), dictTag.StringSlice()
	files := pkg.Files()
	if len(classes) != len(files) {
		return nil
	}
	out := map[string]bool{}
	for i, f := range files {
		c := classes[i]
		if c < 0 || c >= int64(len(dict)) {
			return nil
		}
		if strings.HasPrefix(dict[c], "ELF") {
			out[path.Clean("/"+f.Name())] = true
		}
	}
	return out
}

// readCloser pairs a decompressing reader with its Close.
type readCloser struct {
	io.Reader
	close func()
}

func (r readCloser) Close() error {
	if r.close != nil {
		r.close()
	}
	return nil
}

// decompressor wraps the payload in its decompressor. An empty compressor
// name (very old RPMs) means gzip.
func decompressor(name string, r *bufio.Reader) (io.ReadCloser, error) {
	switch name {
	case "gzip", "":
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%w: gzip payload: %v", ErrBadPackage, err)
		}
		return readCloser{z, func() { z.Close() }}, nil
	case "zstd":
		z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return nil, fmt.Errorf("%w: zstd payload: %v", ErrBadPackage, err)
		}
		return readCloser{z, z.Close}, nil
	case "xz":
		z, err := xz.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%w: xz payload: %v", ErrBadPackage, err)
		}
		return readCloser{Reader: z}, nil
	case "lzma":
		z, err := lzma.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%w: lzma payload: %v", ErrBadPackage, err)
		}
		return readCloser{Reader: z}, nil
	case "bzip2":
		return readCloser{Reader: bzip2.NewReader(r)}, nil
	case "identity", "none":
		return readCloser{Reader: r}, nil
	}
	return nil, fmt.Errorf("%w: unknown payload compressor %q", ErrBadPackage, name)
}
