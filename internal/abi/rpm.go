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
	tagOldFilenames = 1027
	tagDirIndexes   = 1116
	tagBasenames    = 1117
	tagDirNames     = 1118
	tagFileClass    = 1141
	tagClassDict    = 1142
)

// zstdMaxWindow bounds the zstd decoder's window: rpm writes level 19
// (8 MiB windows) and, with long mode, up to 128 MiB.
const zstdMaxWindow = 256 << 20

// rpmHeader is what the scanner needs from an RPM's header.
type rpmHeader struct {
	ID         metadata.PackageID
	Compressor string
	SourceRPM  string // "foo-1.0-1.el9.src.rpm"; "" for a source package
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
		SourceRPM:  pkg.SourceRPM(),
	}
	if pkg.Epoch() != 0 {
		h.ID.Epoch = strconv.Itoa(pkg.Epoch())
	}
	if f := pkg.PayloadFormat(); f != "" && f != "cpio" {
		return h, 0, fmt.Errorf("%w: payload format %q (want cpio)", ErrBadPackage, f)
	}
	h.files, err = fileNames(pkg)
	if err != nil {
		return h, 0, err
	}
	h.elfPaths = elfPathsFromClasses(pkg, h.files)
	if need != nil && !need(h) {
		return h, 0, nil
	}
	dec, err := decompressor(h.Compressor, br)
	if err != nil {
		return h, 0, err
	}
	defer dec.Close()
	cr := &countingReader{r: dec}
	pr := bufio.NewReaderSize(cr, 64<<10)
	if magic, _ := pr.Peek(len(strippedMagic)); string(magic) == strippedMagic {
		// rpm >= 4.12 writes this form when a file is 4 GiB or more.
		var files *strippedFiles
		if files, err = newStrippedFiles(pkg, h.files); err == nil {
			err = walkStripped(pr, h, files, fn)
		}
	} else {
		err = walkNewc(pr, h, fn)
	}
	if err == nil {
		// Read the compressed stream to its end, so its checksums and
		// footer are verified: a truncated package is an error even when
		// the cpio trailer arrived.
		if _, err = io.Copy(io.Discard, pr); err != nil {
			err = fmt.Errorf("%w: payload end: %v", ErrBadPackage, err)
		}
	}
	if err != nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return h, cr.n, err
}

// walkNewc reads a cpio payload of "new ASCII" entries (070701, 070702) to
// its trailer, calling fn for every regular file with content.
func walkNewc(r io.Reader, h *rpmHeader, fn func(h *rpmHeader, e payloadEntry, body io.Reader) error) error {
	arc := cpio.NewReader(r)
	for {
		hdr, err := arc.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: payload: %v", ErrBadPackage, err)
		}
		if !hdr.Mode.IsRegular() || hdr.Size == 0 {
			continue
		}
		name := "/" + strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		if err := fn(h, payloadEntry{Path: name, Mode: hdr.Mode, Size: hdr.Size}, arc); err != nil {
			return err
		}
	}
}

// elfPathsFromClasses returns the files that rpm classified as ELF when it
// built the package (FILECLASS indexes CLASSDICT, "ELF 64-bit LSB shared
// object, ..."), or nil when the header lacks the tags or they disagree.
func elfPathsFromClasses(pkg *rpm.Package, files []string) map[string]bool {
	classTag, dictTag := pkg.Header.GetTag(tagFileClass), pkg.Header.GetTag(tagClassDict)
	if classTag == nil || dictTag == nil {
		return nil
	}
	classes, dict := classTag.Int64Slice(), dictTag.StringSlice()
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
			out[f] = true
		}
	}
	return out
}

// fileNames returns the paths the header lists, from the compressed form
// (dirnames, dirindexes, basenames) or the old full names. rpm.Package.Files
// is not used: it indexes its arrays without checking their lengths.
func fileNames(pkg *rpm.Package) ([]string, error) {
	if old := pkg.Header.GetTag(tagOldFilenames).StringSlice(); len(old) > 0 {
		out := make([]string, len(old))
		for i, n := range old {
			out[i] = path.Clean("/" + n)
		}
		return out, nil
	}
	base := pkg.Header.GetTag(tagBasenames).StringSlice()
	idx := pkg.Header.GetTag(tagDirIndexes).Int64Slice()
	dirs := pkg.Header.GetTag(tagDirNames).StringSlice()
	if len(idx) != len(base) {
		return nil, fmt.Errorf("%w: header lists %d file names and %d directory indexes", ErrBadPackage, len(base), len(idx))
	}
	out := make([]string, len(base))
	for i, b := range base {
		if idx[i] < 0 || idx[i] >= int64(len(dirs)) {
			return nil, fmt.Errorf("%w: header file %q has directory index %d of %d", ErrBadPackage, b, idx[i], len(dirs))
		}
		out[i] = path.Clean("/" + dirs[idx[i]] + b)
	}
	return out, nil
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

// xzMaxDict bounds the LZMA2 dictionary an xz payload may ask for: the
// decoder allocates it whole. xz -9 uses 64 MiB; rpm's default level less.
const xzMaxDict = 256 << 20

// checkXZDict peeks at the first block header of the xz stream in r and
// refuses a dictionary over xzMaxDict before the decoder allocates it.
// (Later blocks of multi-block streams are not checked.)
func checkXZDict(r *bufio.Reader) error {
	b, _ := r.Peek(12 + 1024)
	if len(b) < 13 || string(b[1:6]) != "7zXZ\x00" {
		return nil // the decoder reports what is wrong
	}
	blk := b[12:]
	size := (int(blk[0]) + 1) * 4
	if blk[0] == 0 || size > len(blk) {
		return nil // the index, or a header the decoder rejects
	}
	flags, i := blk[1], 2
	varint := func() (uint64, bool) {
		var v uint64
		for shift := 0; i < size && shift < 63; shift += 7 {
			c := blk[i]
			i++
			v |= uint64(c&0x7f) << shift
			if c&0x80 == 0 {
				return v, true
			}
		}
		return 0, false
	}
	if flags&0x40 != 0 {
		varint() // compressed size
	}
	if flags&0x80 != 0 {
		varint() // uncompressed size
	}
	for n := int(flags&3) + 1; n > 0; n-- {
		id, ok1 := varint()
		props, ok2 := varint()
		if !ok1 || !ok2 || i+int(props) > size {
			return nil
		}
		if id == 0x21 && props == 1 { // LZMA2: one byte of dictionary size
			d := blk[i]
			if d > 40 {
				return nil
			}
			dict := uint64(2|d&1) << (d/2 + 11)
			if d == 40 {
				dict = 1<<32 - 1
			}
			if dict > xzMaxDict {
				return fmt.Errorf("%w: xz payload asks for a %d MiB dictionary (limit %d MiB)", ErrTooLarge, dict>>20, xzMaxDict>>20)
			}
		}
		i += int(props)
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
		if err := checkXZDict(r); err != nil {
			return nil, err
		}
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
