package cache

import "github.com/dgraph-io/badger/v4"

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
