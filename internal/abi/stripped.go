package abi

// rpm's stripped cpio payload. From rpm 4.12 a package with a file of
// 4 GiB or more (over the 32-bit size field of cpio's "new ASCII" format)
// gets a payload whose entries are only "07070X" and the file's index in
// the header, padded to 4 bytes; the path, mode and size are the header's
// (sizes from LONGFILESIZES), and the archive still ends with a new ASCII
// "TRAILER!!!" entry. The package requires rpmlib(LargeFiles).

import (
	"bufio"
	"fmt"
	"io"
	"strconv"

	"github.com/cavaliergopher/cpio"
	"github.com/cavaliergopher/rpm"
)

// strippedMagic starts every entry of a stripped payload.
const strippedMagic = "07070X"

// Header tags of the per-file metadata a stripped payload leaves out.
const (
	tagFileSizes     = 1028
	tagFileModes     = 1030
	tagFileDevices   = 1095
	tagFileInodes    = 1096
	tagLongFileSizes = 5008
)

// newcTrailer names the entry that ends a cpio archive.
const newcTrailer = "TRAILER!!!"

// strippedFiles is the header's view of the payload's files, by index.
type strippedFiles struct {
	paths []string
	modes []int64
	sizes []int64
	// content: the entry of this index carries the file's bytes in the
	// payload (a regular file; of hard links, only the last of a set).
	content []bool
}

func newStrippedFiles(pkg *rpm.Package, paths []string) (*strippedFiles, error) {
	n := len(paths)
	f := &strippedFiles{paths: paths, modes: pkg.Header.GetTag(tagFileModes).Int64Slice()}
	if f.sizes = pkg.Header.GetTag(tagLongFileSizes).Int64Slice(); f.sizes == nil {
		f.sizes = pkg.Header.GetTag(tagFileSizes).Int64Slice()
	}
	inodes := pkg.Header.GetTag(tagFileInodes).Int64Slice()
	devices := pkg.Header.GetTag(tagFileDevices).Int64Slice()
	if len(f.modes) != n || len(f.sizes) != n {
		return nil, fmt.Errorf("%w: stripped payload: header lists %d files, %d modes and %d sizes", ErrBadPackage, n, len(f.modes), len(f.sizes))
	}
	f.content = make([]bool, n)
	type inode struct{ dev, ino int64 }
	last := map[inode]int{} // the highest index of each hard-link set
	for i := range n {
		if f.sizes[i] < 0 {
			return nil, fmt.Errorf("%w: stripped payload: file %s has size %d", ErrBadPackage, paths[i], f.sizes[i])
		}
		if cpio.FileMode(f.modes[i]).IsRegular() {
			f.content[i] = true
			if len(inodes) == n && len(devices) == n {
				last[inode{devices[i], inodes[i]}] = i
			}
		}
	}
	if len(inodes) == n && len(devices) == n {
		for i := range n {
			if f.content[i] {
				f.content[i] = last[inode{devices[i], inodes[i]}] == i
			}
		}
	}
	return f, nil
}

// paddedReader reads a payload and knows its offset, for cpio's 4-byte
// alignment.
type paddedReader struct {
	r   *bufio.Reader
	off int64
}

func (p *paddedReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.off += int64(n)
	return n, err
}

func (p *paddedReader) full(n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := io.ReadFull(p, b)
	return b, err
}

func (p *paddedReader) skip(n int64) error {
	m, err := io.CopyN(io.Discard, p, n)
	if err == io.EOF && m < n {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (p *paddedReader) pad() error { return p.skip((4 - p.off%4) % 4) }

// walkStripped reads a stripped payload to its trailer, calling fn for
// every regular file with content.
func walkStripped(r *bufio.Reader, h *rpmHeader, files *strippedFiles, fn func(h *rpmHeader, e payloadEntry, body io.Reader) error) error {
	p := &paddedReader{r: r}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: stripped payload at byte %d: %s", ErrBadPackage, p.off, fmt.Sprintf(format, args...))
	}
	for {
		if err := p.pad(); err != nil {
			return bad("no trailer: %v", err)
		}
		magic, err := p.full(len(strippedMagic))
		if err != nil {
			return bad("no trailer: %v", err)
		}
		switch string(magic) {
		case strippedMagic:
		case "070701", "070702":
			// Only the trailer is a full entry here.
			hdr, err := p.full(104)
			if err != nil {
				return bad("entry header: %v", err)
			}
			size, err1 := strconv.ParseUint(string(hdr[48:56]), 16, 32)
			nameSize, err2 := strconv.ParseUint(string(hdr[88:96]), 16, 32)
			if err1 != nil || err2 != nil || nameSize == 0 || nameSize > 4096 {
				return bad("unreadable entry header %q", hdr)
			}
			name, err := p.full(int(nameSize))
			if err != nil {
				return bad("entry name: %v", err)
			}
			if string(name[:nameSize-1]) != newcTrailer || size != 0 {
				return bad("full entry %q in a stripped payload", name[:nameSize-1])
			}
			return nil // what follows is read as the stream's end
		default:
			return bad("entry magic %q", magic)
		}
		idx, err := p.full(8)
		if err != nil {
			return bad("file index: %v", err)
		}
		fx, err := strconv.ParseUint(string(idx), 16, 32)
		if err != nil {
			return bad("file index %q", idx)
		}
		if fx == 0xffffffff { // rpm reads it as -1: the end
			return nil
		}
		if fx >= uint64(len(files.paths)) {
			return bad("file index %d of %d files", fx, len(files.paths))
		}
		if err := p.pad(); err != nil {
			return bad("%v", err)
		}
		mode := cpio.FileMode(files.modes[fx])
		var size int64
		switch {
		case files.content[fx]:
			size = files.sizes[fx]
		case mode&cpio.ModeType == cpio.TypeSymlink:
			size = files.sizes[fx] // the link's target
		}
		if size == 0 {
			continue
		}
		body := &io.LimitedReader{R: p, N: size}
		if mode.IsRegular() {
			if err := fn(h, payloadEntry{Path: files.paths[fx], Mode: mode, Size: size}, body); err != nil {
				return err
			}
		}
		if err := p.skip(body.N); err != nil {
			return bad("%s: %v", files.paths[fx], err)
		}
	}
}
