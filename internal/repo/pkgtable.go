package repo

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/maphash"
	"math/bits"
	"slices"
	"strings"

	"github.com/dnfproxy/dnfproxy/metadata"
)

// pkgTable is a generation's package index as it is held: every entry (a
// package's path below the root, its digest, its size) packed back to
// back in one byte slice, and an open-addressing hash table of the
// entries' offsets. A 30,000-package repo's index takes about 2.7 MB this
// way; as a map of strings it took about 6 MB (a string header and an
// allocation for each path and each digest, the map's slots), and a
// proxy holds the indexes of every repo, the reference repos included,
// current and previous generation.
//
// An entry is: uvarint len(path), path, the digest type (an index into
// sumTypes, len(sumTypes) when the digest is kept as "type:value" text),
// uvarint len(digest), digest, uvarint size.
type pkgTable struct {
	blocks [][]byte // the entries, in blocks of about blockSize bytes
	slots  []uint32 // 1+ref of an entry, 0 when empty; a power of two long
	n      int      // distinct paths
	seed   maphash.Seed
}

// An entry's ref is its block's index (high bits) and its offset in the
// block (low blockBits bits): an entry starts in a block only when it
// fits, and one larger than a block gets a block of its own, so offsets
// stay below blockSize. Blocks are allocated at their final size, so the
// table's bytes are never copied to grow and keep no growth slack.
const (
	blockBits = 16
	blockSize = 1 << blockBits
	maxBlocks = 1<<(32-blockBits) - 1 // refs+1 fit 32 bits
)

// errTableFull: more entries than the refs' 32 bits address.
var errTableFull = errors.New("package index over 4 GiB")

// tableBuilder collects the entries of a pkgTable in document order.
type tableBuilder struct {
	blocks [][]byte
	refs   []uint32
	entry  []byte // scratch: the entry being added
	err    error
}

var sumTypes = [...]string{"md5", "sha1", "sha224", "sha256", "sha384", "sha512"}

// add appends an entry; a later entry for the same path replaces an
// earlier one when the table is built.
func (b *tableBuilder) add(rel string, r PkgRef) {
	if b.err != nil {
		return
	}
	e := binary.AppendUvarint(b.entry[:0], uint64(len(rel)))
	e = append(e, rel...)
	e = appendSum(e, r.Sum)
	e = binary.AppendUvarint(e, uint64(max(r.Size, 0)))
	b.entry = e
	last := len(b.blocks) - 1
	if last < 0 || len(b.blocks[last])+len(e) > cap(b.blocks[last]) {
		if len(b.blocks) >= maxBlocks {
			b.err = errTableFull
			return
		}
		b.blocks = append(b.blocks, make([]byte, 0, max(blockSize, len(e))))
		last++
	}
	b.refs = append(b.refs, uint32(last)<<blockBits|uint32(len(b.blocks[last])))
	b.blocks[last] = append(b.blocks[last], e...)
}

// appendSum appends a digest: its type index, its length and its bytes.
// A known type with a lowercase hex value is kept as raw bytes (half the
// size), anything else as its "type:value" text.
func appendSum(b []byte, s metadata.Checksum) []byte {
	if i := slices.Index(sumTypes[:], s.Type); i >= 0 && lowerHex(s.Value) {
		b = append(b, byte(i))
		b = binary.AppendUvarint(b, uint64(len(s.Value)/2))
		b, _ = hex.AppendDecode(b, []byte(s.Value))
		return b
	}
	b = append(b, byte(len(sumTypes)))
	b = binary.AppendUvarint(b, uint64(len(s.Type)+1+len(s.Value)))
	b = append(b, s.Type...)
	b = append(b, ':')
	return append(b, s.Value...)
}

// lowerHex: v is an even number of lowercase hex digits, so its raw bytes
// give it back as it was.
func lowerHex(v string) bool {
	if len(v)%2 != 0 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// table builds the hash table over the entries added.
func (b *tableBuilder) table() (*pkgTable, error) {
	if b.err != nil {
		return nil, b.err
	}
	t := &pkgTable{blocks: b.blocks, seed: maphash.MakeSeed()}
	size := 8
	if len(b.refs) > 0 {
		size = max(size, 1<<bits.Len(uint(2*len(b.refs)-1))) // load ≤ 1/2
	}
	t.slots = make([]uint32, size)
	for _, ref := range b.refs {
		t.insert(ref)
	}
	return t, nil
}

func (t *pkgTable) insert(ref uint32) {
	rel, _ := t.path(ref)
	mask := uint64(len(t.slots) - 1)
	for i := maphash.Bytes(t.seed, rel) & mask; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			t.slots[i] = ref + 1
			t.n++
			return
		}
		if p, _ := t.path(s - 1); string(p) == string(rel) {
			t.slots[i] = ref + 1 // the later entry wins
			return
		}
	}
}

// path returns the path of the entry ref (aliasing the table) and the
// rest of the entry.
func (t *pkgTable) path(ref uint32) (path, rest []byte) {
	e := t.blocks[ref>>blockBits][ref&(blockSize-1):]
	n, k := binary.Uvarint(e)
	return e[k : k+int(n)], e[k+int(n):]
}

// lookup returns the entry of a path.
func (t *pkgTable) lookup(rel string) (PkgRef, bool) {
	if t == nil {
		return PkgRef{}, false
	}
	mask := uint64(len(t.slots) - 1)
	for i := maphash.String(t.seed, rel) & mask; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return PkgRef{}, false
		}
		if p, _ := t.path(s - 1); string(p) == rel {
			return t.entry(s - 1), true
		}
	}
}

// entry decodes the PkgRef of the entry ref.
func (t *pkgTable) entry(ref uint32) PkgRef {
	_, e := t.path(ref)
	typ := e[0]
	n, k := binary.Uvarint(e[1:])
	digest := e[1+k : 1+k+int(n)]
	size, _ := binary.Uvarint(e[1+k+int(n):])
	r := PkgRef{Size: int64(size)}
	if int(typ) < len(sumTypes) {
		r.Sum = metadata.Checksum{Type: sumTypes[typ], Value: hex.EncodeToString(digest)}
	} else {
		typ, val, _ := strings.Cut(string(digest), ":")
		r.Sum = metadata.Checksum{Type: typ, Value: val}
	}
	return r
}

// count is the number of distinct paths.
func (t *pkgTable) count() int {
	if t == nil {
		return 0
	}
	return t.n
}
