package cache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
)

// GCer is implemented by stores whose deletions free disk space only once a
// garbage collection has run (the badger store). Stores without it give
// space back at once.
type GCer interface {
	RunGC(ctx context.Context) error
}

// DiskUser is implemented by stores that live in files; DiskUsage is the
// space their files take on disk, as du counts it.
type DiskUser interface {
	DiskUsage() (int64, error)
}

var (
	_ GCer     = (*Badger)(nil)
	_ DiskUser = (*Badger)(nil)
)

// flushKey is written and dropped again by compact; no object key starts
// with it.
var flushKey = []byte("x/flush")

// RunGC gives the disk space of deleted and replaced objects back to the
// file system, in two steps:
//
//  1. When anything was deleted since the last RunGC, it flushes badger's
//     memtable and compacts the LSM tree into one level. Badger learns that
//     a value-log entry is garbage only when a compaction drops the deleted
//     key; a deletion still in the memtable (16 MiB of keys: weeks of fills)
//     or in an upper level counts for nothing, and RunValueLogGC would find
//     no file worth rewriting.
//  2. It rewrites value-log files, the one with the most garbage first,
//     while one is at least GCDiscardRatio garbage, then while one is at
//     least GCFinalDiscardRatio garbage; each rewritten file is deleted.
//
// Afterwards the value log holds at most live/(1-GCFinalDiscardRatio)
// bytes in sealed files, plus the file being written (at most
// ValueLogFileSize; badger never rewrites it). Objects deleted or replaced
// while an Object reads them count as live until their last Close.
//
// Open Objects do not hold it up: they hold no badger transaction, and the
// chunks they read stay live under their lease (GC may move them; a read
// finds them at their new place). Each step holds off writes to the store
// (chunks, commits, deletes) for its duration, not reads: milliseconds for
// the compaction of a store of thousands of objects (the LSM holds keys and
// manifests only), up to about a second for the rewrite of a value-log file.
func (b *Badger) RunGC(ctx context.Context) error {
	if b.garbage.Load() > 0 {
		if err := b.exclusive(ctx, b.compact); err != nil {
			return err
		}
	}
	for _, ratio := range []float64{b.opt.GCDiscardRatio, b.opt.GCFinalDiscardRatio} {
		for more := true; more; {
			// Exclusive: badger v4.9.6's value-log rewrite reads the
			// memtable's max version without a lock (DB.MaxVersion), racing
			// any concurrent write; the race detector catches it.
			err := b.exclusive(ctx, func() error {
				var err error
				more, err = b.rewriteOne(ratio)
				return err
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// exclusive runs fn with every write to the store held off.
func (b *Badger) exclusive(ctx context.Context, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	b.closeMu.RLock()
	defer b.closeMu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	return fn()
}

// compact makes every deletion so far count as value-log garbage. b.writeMu
// must be held: DropPrefix refuses concurrent writes (ErrBlockedWrites).
func (b *Badger) compact() error {
	g := b.garbage.Load()
	// DropPrefix is badger's one public way to flush the memtables: when
	// the prefix exists it flushes them to level 0 and compacts level 0 down.
	err := b.db.Update(func(txn *badger.Txn) error { return txn.Set(flushKey, nil) })
	if err == nil {
		err = b.db.DropPrefix(flushKey)
	}
	if err == nil {
		// Bring every level into one, so that each deleted key meets its
		// tombstone in a compaction with nothing below it.
		err = b.db.Flatten(2)
	}
	if err != nil {
		return fmt.Errorf("cache: compact: %w", wrapErr(err))
	}
	b.garbage.Add(-g)
	return nil
}

// rewriteOne rewrites the value-log file with the most garbage if at least
// ratio of it is garbage, and reports whether it did.
func (b *Badger) rewriteOne(ratio float64) (bool, error) {
	err := b.db.RunValueLogGC(ratio)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
		return false, nil
	default:
		return false, fmt.Errorf("cache: value log gc: %w", wrapErr(err))
	}
}

// DiskUsage implements DiskUser: the space the badger directory takes.
func (b *Badger) DiskUsage() (int64, error) { return DiskUsage(b.dir) }

// DiskUsage returns the disk space the files under dir take, as du counts
// it: allocated blocks, so badger's sparse, preallocated value-log and
// memtable files count for what was written to them, not their length.
func DiskUsage(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile (a rewritten value-log file)
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		total += allocated(fi)
		return nil
	})
	return total, err
}
