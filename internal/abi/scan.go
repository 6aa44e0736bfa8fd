package abi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/dnfproxy/dnfproxy/metadata"
)

// Limits bound the memory and disk a package scan uses.
type Limits struct {
	// MaxELFSize is the largest ELF file analysed; bigger ones are listed in
	// PackageABI.Skipped. Default 1 GiB.
	MaxELFSize int64
	// MemELFSize is the largest ELF file read into memory; bigger ones (up
	// to MaxELFSize) are spooled to a temporary file in TempDir. Default
	// 64 MiB.
	MemELFSize int64
	// TempDir holds the spooled files ("" is os.TempDir()).
	TempDir string
}

// Default limits.
const (
	DefaultMaxELFSize = 1 << 30
	DefaultMemELFSize = 64 << 20
	maxStablelistSize = 16 << 20
)

func (l Limits) withDefaults() Limits {
	if l.MaxELFSize <= 0 {
		l.MaxELFSize = DefaultMaxELFSize
	}
	if l.MemELFSize <= 0 {
		l.MemELFSize = DefaultMemELFSize
	}
	if l.MemELFSize > l.MaxELFSize {
		l.MemELFSize = l.MaxELFSize
	}
	return l
}

// PackageABI is the exported interface of one RPM.
type PackageABI struct {
	ID metadata.PackageID `json:"id"`
	// SourceRPM is the header's source package ("foo-1.0-1.el9.src.rpm"),
	// which names the build's main debuginfo package.
	SourceRPM string     `json:"source_rpm,omitempty"`
	Libraries []*Library `json:"libraries"` // sorted by Key
	// Skipped are ELF files that were not analysed (over Limits.MaxELFSize).
	Skipped []string `json:"skipped,omitempty"`
	// Stablelist is the kABI stablelist the package ships, if any.
	Stablelist *Stablelist `json:"-"`
	// PayloadBytes is the size of the uncompressed payload read.
	PayloadBytes int64 `json:"payload_bytes"`
}

// Library returns the library of a key, or nil.
func (p *PackageABI) Library(key string) *Library {
	i := sort.Search(len(p.Libraries), func(i int) bool { return p.Libraries[i].Key() >= key })
	if i < len(p.Libraries) && p.Libraries[i].Key() == key {
		return p.Libraries[i]
	}
	return nil
}

// ScanRPM reads the RPM in r and returns the exported interface of its
// shared libraries (and the kABI stablelist it ships, if any). The payload
// is streamed; only ELF shared objects are buffered, within lim.
func ScanRPM(ctx context.Context, r io.Reader, lim Limits) (*PackageABI, error) {
	lim = lim.withDefaults()
	out := &PackageABI{}
	libs := map[string]*Library{}
	var scratch []byte // reused for every ELF file read into memory
	h, n, err := walkRPM(ctx, r, needPayload, func(h *rpmHeader, e payloadEntry, body io.Reader) error {
		if stablelistPath(e.Path) {
			if e.Size > maxStablelistSize {
				return fmt.Errorf("%w: %s is %d bytes (limit %d)", ErrTooLarge, e.Path, e.Size, maxStablelistSize)
			}
			sl, err := ParseStablelist(io.LimitReader(body, e.Size))
			if err != nil {
				return fmt.Errorf("%s: %w", e.Path, err)
			}
			if out.Stablelist == nil {
				out.Stablelist = &Stablelist{}
			}
			out.Stablelist.merge(sl)
			return nil
		}
		if h.elfPaths != nil && !h.elfPaths[e.Path] {
			return nil
		}
		lib, err := scanELF(body, e, lim, &out.Skipped, &scratch)
		if err != nil || lib == nil {
			return err
		}
		if prev, ok := libs[lib.Key()]; ok {
			mergeLibrary(prev, lib)
		} else {
			libs[lib.Key()] = lib
		}
		return nil
	})
	out.PayloadBytes = n
	if err != nil {
		return nil, err
	}
	out.ID, out.SourceRPM = h.ID, h.SourceRPM
	for _, l := range libs {
		out.Libraries = append(out.Libraries, l)
	}
	sort.Slice(out.Libraries, func(i, j int) bool { return out.Libraries[i].Key() < out.Libraries[j].Key() })
	sort.Strings(out.Skipped)
	return out, nil
}

// needPayload says whether a package may hold anything ScanRPM reads: when
// rpm's file classes show no ELF file and no stablelist is listed, the
// payload is not decompressed at all.
func needPayload(h *rpmHeader) bool {
	if h.elfPaths == nil || len(h.elfPaths) > 0 {
		return true
	}
	for _, f := range h.files {
		if stablelistPath(f) {
			return true
		}
	}
	return false
}

// ReadStablelist returns the kABI stablelist shipped in the RPM in r (RHEL's
// kernel-abi-stablelists), or an error wrapping ErrBadStablelist when the
// package ships none.
func ReadStablelist(ctx context.Context, r io.Reader) (*Stablelist, error) {
	p, err := ScanRPM(ctx, r, Limits{})
	if err != nil {
		return nil, err
	}
	if p.Stablelist == nil {
		return nil, fmt.Errorf("%w: %s ships no /usr/lib/modules/kabi-*/kabi_stablelist_<arch>", ErrBadStablelist, p.ID.NEVRA())
	}
	return p.Stablelist, nil
}

// scanELF reads one payload file: nil, nil when it is not an ELF shared
// library.
func scanELF(body io.Reader, e payloadEntry, lim Limits, skipped *[]string, scratch *[]byte) (*Library, error) {
	br := bufio.NewReaderSize(body, 4096)
	head, _ := br.Peek(4096)
	if len(head) < 18 || !bytes.Equal(head[:4], []byte("\x7fELF")) {
		return nil, nil
	}
	var order binary.ByteOrder = binary.LittleEndian
	if head[5] == 2 {
		order = binary.BigEndian
	}
	if order.Uint16(head[16:18]) != 3 { // ET_DYN
		return nil, nil
	}
	if !isLibDir(e.Path) && hasInterp(head, order) {
		// A position-independent executable outside the library
		// directories: not read further (a library there would need a
		// SONAME, and libraries with an interpreter live in lib dirs).
		return nil, nil
	}
	if e.Size > lim.MaxELFSize {
		*skipped = append(*skipped, e.Path)
		return nil, nil
	}
	ra, cleanup, err := spool(br, e.Size, lim, scratch)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	lib, err := readLibrary(ra, e.Path)
	if errors.Is(err, errNotLibrary) {
		return nil, nil
	}
	return lib, err
}

// hasInterp says whether the program headers in the first bytes of an ELF
// file include PT_INTERP (false when they are not within head).
func hasInterp(head []byte, order binary.ByteOrder) bool {
	var phoff uint64
	var phentsize, phnum int
	switch head[4] {
	case 1: // ELFCLASS32
		if len(head) < 52 {
			return false
		}
		phoff, phentsize, phnum = uint64(order.Uint32(head[28:32])), int(order.Uint16(head[42:44])), int(order.Uint16(head[44:46]))
	case 2: // ELFCLASS64
		if len(head) < 64 {
			return false
		}
		phoff, phentsize, phnum = order.Uint64(head[32:40]), int(order.Uint16(head[54:56])), int(order.Uint16(head[56:58]))
	default:
		return false
	}
	if phentsize < 4 {
		return false
	}
	for i := 0; i < phnum; i++ {
		off := phoff + uint64(i*phentsize)
		if off+4 > uint64(len(head)) {
			return false
		}
		if order.Uint32(head[off:off+4]) == 3 { // PT_INTERP
			return true
		}
	}
	return false
}

// spool makes the size bytes of r randomly accessible, in memory up to
// lim.MemELFSize (in *scratch, grown as needed and reused: debug/elf copies
// the strings it returns) and in a temporary file beyond.
func spool(r io.Reader, size int64, lim Limits, scratch *[]byte) (io.ReaderAt, func(), error) {
	if size <= lim.MemELFSize {
		if int64(cap(*scratch)) < size {
			*scratch = make([]byte, size)
		}
		buf := (*scratch)[:size]
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, nil, fmt.Errorf("%w: truncated payload: %v", ErrBadPackage, err)
		}
		return bytes.NewReader(buf), func() {}, nil
	}
	f, err := os.CreateTemp(lim.TempDir, "dnfproxy-elf-*")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { f.Close(); os.Remove(f.Name()) }
	if _, err := io.CopyN(f, r, size); err != nil {
		cleanup()
		if errors.Is(err, io.EOF) {
			return nil, nil, fmt.Errorf("%w: truncated payload", ErrBadPackage)
		}
		return nil, nil, err
	}
	return f, cleanup, nil
}

// mergeLibrary adds to a the symbols and versions of b, another file with
// the same SONAME in the same package.
func mergeLibrary(a, b *Library) {
	have := map[string]bool{}
	for _, s := range a.Symbols {
		have[s.ID()] = true
	}
	for _, s := range b.Symbols {
		if !have[s.ID()] {
			a.Symbols = append(a.Symbols, s)
		}
	}
	sort.Slice(a.Symbols, func(i, j int) bool { return a.Symbols[i].ID() < a.Symbols[j].ID() })
	nodes := map[string]bool{}
	for _, v := range append(a.Versions, b.Versions...) {
		nodes[v] = true
	}
	a.Versions = a.Versions[:0]
	for v := range nodes {
		a.Versions = append(a.Versions, v)
	}
	sort.Strings(a.Versions)
}
