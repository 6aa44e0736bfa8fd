package cache

import (
	"io"

	"github.com/dgraph-io/badger/v4"
)

// ChunkKeys counts the chunk keys in the store, live or orphaned.
func (b *Badger) ChunkKeys() (int, error) {
	n := 0
	err := b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(chunkPrefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n, err
}

// Settle waits for the store's background work: deletions of chunks that
// waited for a last Close, drops of damaged objects.
func (b *Badger) Settle() { b.bg.Wait() }

// SetVerifyChunks turns the chunk checksums on or off (benchmarks measure
// their cost with it).
func (b *Badger) SetVerifyChunks(on bool) { b.noVerify = !on }

// SetTrustVerified turns off (or on again) the skipping of checksums for
// objects already read whole and checked.
func (b *Badger) SetTrustVerified(on bool) { b.noTrust = !on }

// Corrupted counts the chunks that failed their checks.
func (b *Badger) Corrupted() int64 { return b.corrupted.Load() }

// DirectWriteTo writes key's object to w the way the store did before
// Objects copied their chunks: straight from badger's memory-mapped value,
// inside Item.Value, in one read transaction held throughout (counting the
// bytes for release as it did). Benchmarks compare it with Object.WriteTo.
func (b *Badger) DirectWriteTo(key string, w io.Writer) (int64, error) {
	var total int64
	err := b.db.View(func(txn *badger.Txn) error {
		m, err := getManifest(txn, key)
		if err != nil {
			return err
		}
		for n := uint32(0); n < m.Chunks; n++ {
			item, err := txn.Get(chunkKey(m.ID, n))
			if err != nil {
				return err
			}
			b.noteMapped(item.ValueSize())
			err = item.Value(func(v []byte) error {
				k, err := w.Write(v)
				total += int64(k)
				return err
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return total, err
}

// Trusted reports whether key's object is in the set of objects read whole
// and checked (whose later reads skip the checksums).
func (b *Badger) Trusted(key string) bool {
	var id uint64
	err := b.db.View(func(txn *badger.Txn) error {
		m, err := getManifest(txn, key)
		if err == nil {
			id = m.ID
		}
		return err
	})
	return err == nil && b.isVerified(id)
}

// SmallCached counts the objects whose bytes the store keeps in memory.
func (b *Badger) SmallCached() int {
	b.small.mu.Lock()
	defer b.small.mu.Unlock()
	return len(b.small.m)
}
