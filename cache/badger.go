package cache

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Key layout in badger:
//
//	m/<key>              manifest: JSON of manifest (size, chunk count, write id, Meta, times)
//	c/<id:8 BE><n:4 BE>  chunk n of the object written with write id <id>
//
// Chunks are written, each in its own transaction, as bytes arrive; the
// manifest is written last, in one transaction that also deletes the chunks
// of the object it replaces. A crash before that transaction leaves chunks no
// manifest refers to; OpenBadger removes them.
const (
	manifestPrefix = "m/"
	chunkPrefix    = "c/"
	chunkKeyLen    = len(chunkPrefix) + 8 + 4
)

// BadgerOptions tunes the badger store. DefaultBadgerOptions gives values
// for a small daemon: memory stays bounded (well under 100 MiB of heap) while
// objects of any size stream in, because chunks go straight to badger's value
// log and nothing holds a whole object in memory.
type BadgerOptions struct {
	// ChunkSize is the size of the pieces large objects are stored in. It is
	// recorded per object, so changing it does not affect existing objects.
	ChunkSize int
	// AccessedGranularity is how stale an object's Accessed time may get
	// before Get writes a new one (at most one write per key per period).
	AccessedGranularity time.Duration
	// GCDiscardRatio is passed to badger's value-log GC by RunGC: a value
	// log file is rewritten when at least this fraction of it is garbage.
	GCDiscardRatio float64
	// GCFinalDiscardRatio is the lower ratio RunGC goes on with once no
	// file reaches GCDiscardRatio, so that after RunGC no sealed value-log
	// file is more than this fraction garbage (see RunGC).
	GCFinalDiscardRatio float64

	// Badger's own knobs; see badger.Options for their meaning.
	MemTableSize     int64 // bytes per memtable (keys and small values only)
	NumMemtables     int   // memtables held in memory, including the one being filled
	BlockCacheSize   int64 // cache of LSM blocks
	IndexCacheSize   int64 // cache of table indexes and bloom filters
	ValueThreshold   int64 // values at least this long go to the value log
	ValueLogFileSize int64 // size at which a value-log file is rotated
	NumCompactors    int   // badger needs at least 2
	SyncWrites       bool  // fsync every commit (only power loss needs it; kill -9 does not)

	// ReleaseMappedEvery is how many bytes may be written or read through
	// badger's memory-mapped value-log files between two releases of their
	// pages from this process's resident set (Linux only; see release).
	// Badger writes and reads values through mmap, so without this the
	// RSS grows by every byte written or read, up to the size of the value
	// log. Negative disables it.
	ReleaseMappedEvery int64

	// Logger receives badger's warnings and errors; its info and debug
	// chatter is dropped. Nil discards everything.
	Logger *slog.Logger
}

// check reports the first option out of its range.
func (o BadgerOptions) check() error {
	for _, c := range []struct {
		ok   bool
		what string
	}{
		{o.ChunkSize > 0, "ChunkSize must be positive"},
		{o.AccessedGranularity > 0, "AccessedGranularity must be positive"},
		{0 < o.GCFinalDiscardRatio && o.GCFinalDiscardRatio <= o.GCDiscardRatio && o.GCDiscardRatio < 1,
			"want 0 < GCFinalDiscardRatio <= GCDiscardRatio < 1"},
		{o.MemTableSize > 0 && o.NumMemtables > 0, "MemTableSize and NumMemtables must be positive"},
		{o.ValueThreshold > 0 && o.ValueLogFileSize > 0, "ValueThreshold and ValueLogFileSize must be positive"},
		{o.NumCompactors >= 2, "NumCompactors must be at least 2 (badger's minimum)"},
		{o.ReleaseMappedEvery != 0, "ReleaseMappedEvery must be positive, or negative to turn the release off"},
	} {
		if !c.ok {
			return fmt.Errorf("cache: badger options: %s", c.what)
		}
	}
	return nil
}

// DefaultBadgerOptions returns the options dnfproxy runs with.
func DefaultBadgerOptions() BadgerOptions {
	return BadgerOptions{
		ChunkSize:           1 << 20,
		AccessedGranularity: time.Minute,
		GCDiscardRatio:      0.5,
		GCFinalDiscardRatio: 0.2,
		MemTableSize:        16 << 20,
		NumMemtables:        2,
		BlockCacheSize:      8 << 20,
		IndexCacheSize:      4 << 20,
		ValueThreshold:      1 << 10,
		ValueLogFileSize:    128 << 20,
		NumCompactors:       2,
		ReleaseMappedEvery:  16 << 20,
	}
}

// Badger is a Store backed by a badger database in a directory.
type Badger struct {
	db  *badger.DB
	opt BadgerOptions
	dir string // absolute, symlinks resolved: as /proc/self/maps names it

	nextID  atomic.Uint64 // last write id handed out
	objects atomic.Int64
	bytes   atomic.Int64
	garbage atomic.Int64 // bytes deleted, replaced or cancelled since the last compact
	orphans int64        // chunks removed by OpenBadger

	// closeMu is held for reading by every operation that calls badger
	// (but not by open Objects), for writing by Close and by release, which
	// must not run while badger may remap or unmap a value-log file; only
	// writes, iterators and GC do that.
	closeMu sync.RWMutex
	closed  bool

	// readers is held for reading by every open Object and for writing by
	// RunGC while badger rewrites value-log files: GC moves values and
	// drops those of deleted objects, which open Objects may still read.
	readers sync.RWMutex

	mapped      atomic.Int64  // bytes through the value-log mappings since the last release
	releaseCh   chan struct{} // wakes the releaser
	releaseStop chan struct{}
	releaseDone chan struct{}

	touchMu sync.Mutex
	touches map[string]touch // accesses not yet written (noteAccess)
}

var (
	_ Store = (*Badger)(nil)
	_ Sizer = (*Badger)(nil)
)

// manifest is what m/<key> holds.
type manifest struct {
	Size      int64     `json:"size"`
	Chunks    uint32    `json:"chunks"`
	ChunkSize int64     `json:"chunk_size"`
	ID        uint64    `json:"id"`
	Meta      Meta      `json:"meta"`
	Stored    time.Time `json:"stored"`
	Accessed  time.Time `json:"accessed"`
}

func (m *manifest) info(key string) Info {
	return Info{Key: key, Size: m.Size, Meta: m.Meta, Stored: m.Stored, Accessed: m.Accessed}
}

func manifestKey(key string) []byte { return []byte(manifestPrefix + key) }

func chunkKey(id uint64, n uint32) []byte {
	k := make([]byte, chunkKeyLen)
	copy(k, chunkPrefix)
	binary.BigEndian.PutUint64(k[len(chunkPrefix):], id)
	binary.BigEndian.PutUint32(k[len(chunkPrefix)+8:], n)
	return k
}

func chunkID(k []byte) (uint64, bool) {
	if len(k) != chunkKeyLen || !bytes.HasPrefix(k, []byte(chunkPrefix)) {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[len(chunkPrefix):]), true
}

// OpenBadger opens (creating if needed) the store in dir. It removes the
// chunks of writes that never committed and recomputes the size totals.
// Start opt from DefaultBadgerOptions(); an option out of range is an error.
func OpenBadger(dir string, opt BadgerOptions) (*Badger, error) {
	if err := opt.check(); err != nil {
		return nil, err
	}
	bo := badger.DefaultOptions(dir).
		WithLogger(badgerLogger{opt.Logger}).
		WithMemTableSize(opt.MemTableSize).
		WithNumMemtables(opt.NumMemtables).
		WithBlockCacheSize(opt.BlockCacheSize).
		WithIndexCacheSize(opt.IndexCacheSize).
		WithValueThreshold(opt.ValueThreshold).
		WithValueLogFileSize(opt.ValueLogFileSize).
		WithNumCompactors(opt.NumCompactors).
		WithSyncWrites(opt.SyncWrites).
		// The LSM holds keys, manifests and value pointers only: compressing
		// them buys little, and package payloads are compressed already.
		WithCompression(options.None).
		WithMetricsEnabled(false).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithNumGoroutines(2)
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("cache: open badger in %s: %w", dir, wrapErr(err))
	}
	abs, err := filepath.Abs(dir)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("cache: open badger in %s: %w", dir, err)
	}
	b := &Badger{
		db: db, opt: opt, dir: abs,
		releaseCh:   make(chan struct{}, 1),
		releaseStop: make(chan struct{}),
		releaseDone: make(chan struct{}),
		touches:     map[string]touch{},
	}
	if err := b.recover(); err != nil {
		db.Close()
		return nil, err
	}
	go b.releaser()
	return b, nil
}

// noteMapped counts n bytes written or read through badger's value-log
// mappings and wakes the releaser when enough have gone through.
func (b *Badger) noteMapped(n int64) {
	if b.opt.ReleaseMappedEvery < 0 || b.mapped.Add(n) < b.opt.ReleaseMappedEvery {
		return
	}
	b.mapped.Store(0)
	select {
	case b.releaseCh <- struct{}{}:
	default:
	}
}

func (b *Badger) releaser() {
	defer close(b.releaseDone)
	tick := time.NewTicker(touchFlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-b.releaseStop:
			return
		case <-tick.C:
			if done, err := b.begin(context.Background()); err == nil {
				b.writeTouches()
				done()
			}
		case <-b.releaseCh:
			b.closeMu.Lock()
			if !b.closed {
				releaseMapped(b.dir)
			}
			b.closeMu.Unlock()
		}
	}
}

// recover scans manifests and chunks: it sets the size totals and the next
// write id, and deletes chunks that no manifest refers to.
func (b *Badger) recover() error {
	live := make(map[uint64]struct{})
	var maxID uint64
	var orphanKeys [][]byte
	err := b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(manifestPrefix)})
		defer it.Close()
		var objects, size int64
		for it.Rewind(); it.Valid(); it.Next() {
			var m manifest
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &m) }); err != nil {
				return fmt.Errorf("manifest %q: %w", it.Item().Key(), err)
			}
			live[m.ID] = struct{}{}
			maxID = max(maxID, m.ID)
			objects++
			size += m.Size
		}
		b.objects.Store(objects)
		b.bytes.Store(size)

		// Keys only: chunk values stay in the value log, unread.
		cit := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(chunkPrefix)})
		defer cit.Close()
		for cit.Rewind(); cit.Valid(); cit.Next() {
			k := cit.Item().Key()
			id, ok := chunkID(k)
			if !ok {
				continue
			}
			maxID = max(maxID, id)
			if _, ok := live[id]; !ok {
				orphanKeys = append(orphanKeys, cit.Item().KeyCopy(nil))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cache: scan store: %w", wrapErr(err))
	}
	b.nextID.Store(maxID)
	if err := b.deleteKeys(orphanKeys); err != nil {
		return fmt.Errorf("cache: delete orphan chunks: %w", err)
	}
	b.orphans = int64(len(orphanKeys))
	// Deletions of a previous run may not have been compacted yet: the
	// first RunGC compacts in any case.
	b.garbage.Store(b.orphans + 1)
	return nil
}

// OrphansRemoved reports how many chunks of uncommitted writes (left by a
// crash) OpenBadger deleted.
func (b *Badger) OrphansRemoved() int64 { return b.orphans }

// Size implements Sizer.
func (b *Badger) Size() (objects int64, bytes int64) {
	return b.objects.Load(), b.bytes.Load()
}

// begin guards an operation against a concurrent Close. The caller must call
// the returned func when done.
func (b *Badger) begin(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.closeMu.RLock()
	if b.closed {
		b.closeMu.RUnlock()
		return nil, ErrClosed
	}
	return b.closeMu.RUnlock, nil
}

// Close implements Store.
func (b *Badger) Close() error {
	b.closeMu.Lock()
	defer b.closeMu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	close(b.releaseStop)
	b.closeMu.Unlock() // the releaser may be waiting for it
	<-b.releaseDone
	b.closeMu.Lock()
	b.writeTouches()
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("cache: close badger: %w", wrapErr(err))
	}
	return nil
}

// wrapErr maps badger's errors to this package's; the result never exposes a
// badger type or sentinel (callers add context with %w around it).
func wrapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return ErrNotFound
	case errors.Is(err, badger.ErrDBClosed):
		return ErrClosed
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrClosed),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return errors.New(err.Error())
}

func getManifest(txn *badger.Txn, key string) (*manifest, error) {
	item, err := txn.Get(manifestKey(key))
	if err != nil {
		return nil, err
	}
	m := new(manifest)
	if err := item.Value(func(v []byte) error { return json.Unmarshal(v, m) }); err != nil {
		return nil, fmt.Errorf("decode manifest of %q: %w", key, err)
	}
	return m, nil
}

func putManifest(txn *badger.Txn, key string, m *manifest) error {
	v, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return txn.Set(manifestKey(key), v)
}

// update runs fn in a read-write transaction, retrying on conflicts with
// concurrent transactions that touched the same keys.
func (b *Badger) update(ctx context.Context, fn func(txn *badger.Txn) error) error {
	for {
		err := b.db.Update(fn)
		if !errors.Is(err, badger.ErrConflict) {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// Stat implements Store.
func (b *Badger) Stat(ctx context.Context, key string) (Info, error) {
	done, err := b.begin(ctx)
	if err != nil {
		return Info{}, err
	}
	defer done()
	var in Info
	err = b.db.View(func(txn *badger.Txn) error {
		m, err := getManifest(txn, key)
		if err != nil {
			return err
		}
		in = m.info(key)
		b.overlayAccess(&in, m.ID)
		return nil
	})
	if err != nil {
		return Info{}, fmt.Errorf("cache: stat %q: %w", key, wrapErr(err))
	}
	return in, nil
}

// Get implements Store. The returned Object reads from a snapshot taken
// now: later commits and deletes of the key do not affect it. It holds a
// badger read transaction until Close, which delays the reclaiming of space
// of objects replaced meanwhile, so callers must close it promptly.
func (b *Badger) Get(ctx context.Context, key string) (Object, error) {
	done, err := b.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	b.readers.RLock()
	txn := b.db.NewTransaction(false)
	m, err := getManifest(txn, key)
	if err != nil {
		txn.Discard()
		b.readers.RUnlock()
		return nil, fmt.Errorf("cache: get %q: %w", key, wrapErr(err))
	}
	now := time.Now()
	if now.Sub(m.Accessed) >= b.opt.AccessedGranularity {
		b.noteAccess(key, m.ID, now)
		m.Accessed = now
	}
	return &badgerObject{b: b, txn: txn, key: key, m: *m, cur: -1}, nil
}

// touch is an access not yet written to the object's manifest.
type touch struct {
	id uint64 // the object read (a replaced object's touch is dropped)
	at time.Time
}

// touchFlushEvery is how often pending accesses are written.
const touchFlushEvery = 5 * time.Second

// noteAccess records an access in memory; Get never writes. The releaser
// loop writes pending accesses in batches (writeTouches), and Stat and
// List show them meanwhile (overlayAccess).
func (b *Badger) noteAccess(key string, id uint64, at time.Time) {
	b.touchMu.Lock()
	b.touches[key] = touch{id: id, at: at}
	b.touchMu.Unlock()
}

// overlayAccess shows an access not yet written.
func (b *Badger) overlayAccess(in *Info, id uint64) {
	b.touchMu.Lock()
	t, ok := b.touches[in.Key]
	b.touchMu.Unlock()
	if ok && t.id == id && t.at.After(in.Accessed) {
		in.Accessed = t.at
	}
}

// writeTouches writes the pending accesses. It is best effort: the time
// is a hint for eviction, and a failed or conflicting write only makes it
// coarser. The caller keeps the database open.
func (b *Badger) writeTouches() {
	b.touchMu.Lock()
	pending := b.touches
	b.touches = map[string]touch{}
	b.touchMu.Unlock()
	keys := make([]string, 0, len(pending))
	for k := range pending {
		keys = append(keys, k)
	}
	for len(keys) > 0 {
		n := min(len(keys), 256) // one transaction each
		_ = b.db.Update(func(txn *badger.Txn) error {
			for _, key := range keys[:n] {
				t := pending[key]
				m, err := getManifest(txn, key)
				if err != nil || m.ID != t.id || !m.Accessed.Before(t.at) {
					continue // replaced or deleted meanwhile
				}
				m.Accessed = t.at
				if err := putManifest(txn, key, m); err != nil {
					return err
				}
			}
			return nil
		})
		keys = keys[n:]
	}
}

// UpdateMeta implements Store.
func (b *Badger) UpdateMeta(ctx context.Context, key string, fn func(*Meta)) error {
	done, err := b.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	err = b.update(ctx, func(txn *badger.Txn) error {
		m, err := getManifest(txn, key)
		if err != nil {
			return err
		}
		meta := m.Meta
		fn(&meta)
		m.Meta = meta
		return putManifest(txn, key, m)
	})
	if err != nil {
		return fmt.Errorf("cache: update meta of %q: %w", key, wrapErr(err))
	}
	return nil
}

// Delete implements Store.
func (b *Badger) Delete(ctx context.Context, key string) error {
	done, err := b.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	var old *manifest
	var rest uint32
	err = b.update(ctx, func(txn *badger.Txn) error {
		old = nil
		m, err := getManifest(txn, key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := txn.Delete(manifestKey(key)); err != nil {
			return err
		}
		old = m
		rest, err = deleteChunks(txn, m)
		return err
	})
	if err != nil {
		return fmt.Errorf("cache: delete %q: %w", key, wrapErr(err))
	}
	if old != nil {
		if err := b.forget(old, rest); err != nil {
			return fmt.Errorf("cache: delete %q: %w", key, err)
		}
	}
	return nil
}

// deleteChunks deletes m's chunks within txn. If the transaction cannot hold
// them all it returns the first chunk left, for forget to remove after the
// commit (until then they are orphans, unreachable and harmless).
func deleteChunks(txn *badger.Txn, m *manifest) (uint32, error) {
	for n := uint32(0); n < m.Chunks; n++ {
		err := txn.Delete(chunkKey(m.ID, n))
		if errors.Is(err, badger.ErrTxnTooBig) {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
	return m.Chunks, nil
}

// deleteKeys deletes keys outside any transaction, in a write batch.
func (b *Badger) deleteKeys(keys [][]byte) error {
	if len(keys) == 0 {
		return nil
	}
	wb := b.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return wrapErr(err)
		}
	}
	return wrapErr(wb.Flush())
}

// deleteRange deletes chunks [from, to) of write id.
func (b *Badger) deleteRange(id uint64, from, to uint32) error {
	keys := make([][]byte, 0, to-from)
	for n := from; n < to; n++ {
		keys = append(keys, chunkKey(id, n))
	}
	return b.deleteKeys(keys)
}

// forget accounts for an object removed or replaced by a committed
// transaction, and deletes the chunks that did not fit in it (from on).
func (b *Badger) forget(old *manifest, from uint32) error {
	b.objects.Add(-1)
	b.bytes.Add(-old.Size)
	b.garbage.Add(max(old.Size, 1))
	return b.deleteRange(old.ID, from, old.Chunks)
}

// List implements Store. It reads manifests in batches and calls fn with no
// lock or transaction held, so fn may call any method of the store (Delete,
// for a purge). An object committed or deleted during List may or may not
// be seen.
func (b *Badger) List(ctx context.Context, prefix string, fn func(Info) error) error {
	start := manifestKey(prefix)
	for start != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		var batch []Info
		var err error
		batch, start, err = b.listBatch(prefix, start)
		if err != nil {
			return err
		}
		for _, in := range batch {
			if err := fn(in); err != nil {
				return err
			}
		}
	}
	return nil
}

const listBatchSize = 256

// listBatch returns the Infos of up to listBatchSize manifests under prefix,
// from key start on, and the key to resume from (nil at the end).
func (b *Badger) listBatch(prefix string, start []byte) ([]Info, []byte, error) {
	done, err := b.begin(context.Background())
	if err != nil {
		return nil, nil, err
	}
	defer done()
	var batch []Info
	var next []byte
	err = b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: manifestKey(prefix), PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Seek(start); it.Valid(); it.Next() {
			item := it.Item()
			if len(batch) == listBatchSize {
				next = item.KeyCopy(nil)
				return nil
			}
			var m manifest
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &m) }); err != nil {
				return fmt.Errorf("decode manifest %q: %w", item.Key(), err)
			}
			in := m.info(string(item.Key()[len(manifestPrefix):]))
			b.overlayAccess(&in, m.ID)
			batch = append(batch, in)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("cache: list %q: %w", prefix, wrapErr(err))
	}
	return batch, next, nil
}

// Create implements Store.
func (b *Badger) Create(ctx context.Context, key string, meta Meta) (Writer, error) {
	done, err := b.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	return &badgerWriter{b: b, key: key, meta: meta, id: b.nextID.Add(1)}, nil
}

// badgerWriter buffers at most one chunk; every full chunk is written to
// badger at once, under the writer's id, where no reader looks for it.
type badgerWriter struct {
	b      *Badger
	key    string
	meta   Meta
	id     uint64
	buf    []byte // the chunk being filled
	chunks uint32 // chunks written to badger
	size   int64
	done   bool  // committed or cancelled
	err    error // first write error; the writer is unusable after it
}

func (w *badgerWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, errWriterDone
	}
	if w.err != nil {
		return 0, w.err
	}
	cs := w.b.opt.ChunkSize
	written := 0
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = make([]byte, 0, cs)
		}
		n := min(cs-len(w.buf), len(p))
		w.buf = append(w.buf, p[:n]...)
		p = p[n:]
		written += n
		w.size += int64(n)
		if len(w.buf) == cs {
			if err := w.flush(); err != nil {
				w.err = err
				return written, err
			}
		}
	}
	return written, nil
}

// flush writes the buffered chunk (badger copies it into its value log
// before Commit returns, so the buffer is reused).
func (w *badgerWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	done, err := w.b.begin(context.Background())
	if err != nil {
		return err
	}
	defer done()
	k := chunkKey(w.id, w.chunks)
	if err := w.b.db.Update(func(txn *badger.Txn) error { return txn.Set(k, w.buf) }); err != nil {
		return fmt.Errorf("cache: write chunk of %q: %w", w.key, wrapErr(err))
	}
	w.chunks++
	w.b.noteMapped(int64(len(w.buf)))
	w.buf = w.buf[:0]
	return nil
}

func (w *badgerWriter) Commit(ctx context.Context) error {
	if w.done {
		return errWriterDone
	}
	if w.err != nil {
		return w.err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := w.flush(); err != nil {
		w.err = err
		return err
	}
	w.buf = nil
	done, err := w.b.begin(context.Background())
	if err != nil {
		return err
	}
	defer done()
	now := time.Now()
	m := &manifest{
		Size: w.size, Chunks: w.chunks, ChunkSize: int64(w.b.opt.ChunkSize), ID: w.id,
		Meta: w.meta, Stored: now, Accessed: now,
	}
	var old *manifest
	var rest uint32
	err = w.b.update(ctx, func(txn *badger.Txn) error {
		old = nil
		prev, err := getManifest(txn, w.key)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			err = nil
		case err != nil:
			return err
		default:
			old = prev
		}
		// The manifest goes first so that, should the old chunks not all fit
		// in this transaction, the swap itself still happens atomically.
		if err := putManifest(txn, w.key, m); err != nil {
			return err
		}
		if old != nil {
			rest, err = deleteChunks(txn, old)
		}
		return err
	})
	if err != nil {
		w.err = fmt.Errorf("cache: commit %q: %w", w.key, wrapErr(err))
		return w.err
	}
	w.done = true
	w.b.objects.Add(1)
	w.b.bytes.Add(w.size)
	if old != nil {
		// The new object is committed; chunks left over on an error are
		// orphans that the next OpenBadger removes.
		_ = w.b.forget(old, rest)
	}
	return nil
}

func (w *badgerWriter) Cancel() error {
	if w.done {
		return nil
	}
	w.done = true
	w.buf = nil
	if w.chunks == 0 {
		return nil
	}
	w.b.garbage.Add(int64(w.chunks) * int64(w.b.opt.ChunkSize))
	done, err := w.b.begin(context.Background())
	if err != nil {
		return nil // the chunks are orphans; the next OpenBadger removes them
	}
	defer done()
	if err := w.b.deleteRange(w.id, 0, w.chunks); err != nil {
		return fmt.Errorf("cache: cancel %q: %w", w.key, err)
	}
	return nil
}

// badgerObject reads a committed object through a read-only transaction,
// i.e. from the snapshot in which Get found it.
type badgerObject struct {
	b   *Badger
	txn *badger.Txn
	key string
	m   manifest

	mu     sync.Mutex
	off    int64        // Read/Seek position
	cur    int64        // index of the chunk item holds, or -1
	item   *badger.Item // chunk cur; its value is read in place, never copied whole
	closed bool
}

func (o *badgerObject) Info() Info { return o.m.info(o.key) }

// chunk returns the item of chunk n. o.mu must be held.
func (o *badgerObject) chunk(n int64) (*badger.Item, error) {
	if n == o.cur {
		return o.item, nil
	}
	item, err := o.txn.Get(chunkKey(o.m.ID, uint32(n)))
	if err != nil {
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil, fmt.Errorf("cache: read %q: chunk %d missing", o.key, n)
		}
		return nil, fmt.Errorf("cache: read %q: %w", o.key, wrapErr(err))
	}
	o.cur, o.item = n, item
	o.b.noteMapped(item.ValueSize())
	return item, nil
}

// readAt fills p from offset off. o.mu must be held.
func (o *badgerObject) readAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("cache: negative offset")
	}
	if off >= o.m.Size && !o.closed {
		return 0, io.EOF
	}
	n, err := o.walk(off, int64(len(p)), func(v []byte, done int64) (int, error) {
		return copy(p[done:], v), nil
	})
	if err == nil && n < int64(len(p)) {
		err = io.EOF
	}
	return int(n), err
}

// walk hands fn the object's bytes from off on, chunk by chunk and at most
// limit bytes in all, straight from badger's value (fn must not keep it);
// done is how many bytes fn took so far. It returns the bytes fn took.
func (o *badgerObject) walk(off, limit int64, fn func(v []byte, done int64) (int, error)) (int64, error) {
	if o.closed {
		return 0, errors.New("cache: read of closed object")
	}
	cs := o.m.ChunkSize
	var done int64
	for done < limit && off < o.m.Size {
		item, err := o.chunk(off / cs)
		if err != nil {
			return done, err
		}
		in := off % cs
		var n int
		err = item.Value(func(v []byte) error {
			if in >= int64(len(v)) {
				return fmt.Errorf("cache: read %q: chunk %d too short", o.key, off/cs)
			}
			v = v[in:]
			if rest := limit - done; int64(len(v)) > rest {
				v = v[:rest]
			}
			var ferr error
			n, ferr = fn(v, done)
			return ferr
		})
		done += int64(n)
		off += int64(n)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

func (o *badgerObject) Read(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(p) == 0 && !o.closed {
		return 0, nil
	}
	n, err := o.readAt(p, o.off)
	o.off += int64(n)
	if n > 0 && err == io.EOF {
		err = nil // the next Read reports it
	}
	return n, err
}

// WriteTo writes the object from the current offset to its end straight
// from badger's chunks, without an intermediate buffer (io.WriterTo).
func (o *badgerObject) WriteTo(w io.Writer) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, err := o.walk(o.off, o.m.Size-o.off, func(v []byte, _ int64) (int, error) { return w.Write(v) })
	o.off += n
	return n, err
}

func (o *badgerObject) ReadAt(p []byte, off int64) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.readAt(p, off)
}

func (o *badgerObject) Seek(offset int64, whence int) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = o.off + offset
	case io.SeekEnd:
		abs = o.m.Size + offset
	default:
		return 0, errors.New("cache: seek: invalid whence")
	}
	if abs < 0 {
		return 0, errors.New("cache: seek: negative position")
	}
	o.off = abs
	return abs, nil
}

func (o *badgerObject) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	o.closed = true
	o.item = nil
	o.txn.Discard()
	o.b.readers.RUnlock()
	return nil
}

// badgerLogger passes badger's warnings and errors to an slog.Logger and
// drops its info and debug messages.
type badgerLogger struct{ l *slog.Logger }

func (l badgerLogger) Errorf(f string, args ...any) {
	if l.l != nil {
		l.l.Error("badger: " + trimNL(fmt.Sprintf(f, args...)))
	}
}

func (l badgerLogger) Warningf(f string, args ...any) {
	if l.l != nil {
		l.l.Warn("badger: " + trimNL(fmt.Sprintf(f, args...)))
	}
}

func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}

func trimNL(s string) string {
	for len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	return s
}
