package cache

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
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
//	m/<key>              manifest: JSON of manifest (size, chunk count, write id, Meta, times, chunk CRCs)
//	c/<id:8 BE><n:4 BE>  chunk n of the object written with write id <id>
//
// Chunks are written, each in its own transaction, as bytes arrive; the
// manifest is written last, in one transaction. The chunks of the object it
// replaces (or that Delete removes) are deleted right after, or at the last
// Close of the Objects still reading them. A crash before the manifest, or
// before those deletions, leaves chunks no manifest refers to; OpenBadger
// removes them.
//
// Power loss: badger is not asked to fsync (SyncWrites), so the last
// writes before a power loss may be lost or half written, in any order; the
// chunk checksums make a read of such an object fail with ErrCorrupt (and
// drop it) instead of serving other bytes.
const (
	manifestPrefix = "m/"
	chunkPrefix    = "c/"
	chunkKeyLen    = len(chunkPrefix) + 8 + 4
)

// BadgerOptions tunes the badger store. DefaultBadgerOptions gives values
// for a small daemon: memory stays bounded (well under 100 MiB of heap) while
// objects of any size stream in, because chunks go straight to badger's value
// log and nothing holds a whole object in memory. Each Writer and each
// Object being read holds one chunk buffer (from a pool) while open.
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

	// SyncWrites makes badger fsync every write (each chunk and each
	// manifest) before it returns. Off by default: kill -9 loses nothing
	// without it (badger's files are mapped, the page cache survives the
	// process), and a power loss can only lose or damage recently written
	// objects, which the per-chunk checksums catch on read (see Badger);
	// a cache refetches what it lost. docs/BENCHMARKS.md has its cost.
	SyncWrites bool
	// VerifyValueChecksum makes badger check its own CRC of a value-log
	// entry on every read of it. Off by default: every chunk is checked
	// against the checksum in its object's manifest when it is read, which
	// also catches a value that is intact but not the chunk asked for;
	// badger's check would repeat the same work (its cost is measured in
	// docs/BENCHMARKS.md).
	VerifyValueChecksum bool

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
		MemTableSize:        2 << 20,
		NumMemtables:        2,
		BlockCacheSize:      8 << 20,
		IndexCacheSize:      4 << 20,
		ValueThreshold:      1 << 10,
		ValueLogFileSize:    128 << 20,
		NumCompactors:       2,
		ReleaseMappedEvery:  8 << 20,
	}
}

// Badger is a Store backed by a badger database in a directory.
//
// Reading never holds a badger lock or transaction while bytes go to a
// caller: an Object copies each chunk out of badger (in a short read
// transaction) into a pooled buffer, checks it against the chunk's
// checksum, and serves the copy. A client that stops reading therefore
// holds only its own buffer and its lease, never badger's value-log locks
// (which a value-log rotation, and with it every commit, would wait for).
//
// Leases replace the snapshot an open Object used to read from: Get takes
// a lease on the object's write id, and Delete or a replacing Commit that
// finds the object leased leaves its chunks in place until the last Close.
// So an open Object reads its chunks by key, always finding them, and
// value-log GC runs whenever it is due, open Objects or not.
type Badger struct {
	db   *badger.DB
	opt  BadgerOptions
	dir  string // absolute, symlinks resolved: as /proc/self/maps names it
	pool bufPool

	nextID  atomic.Uint64 // last write id handed out
	objects atomic.Int64
	bytes   atomic.Int64
	garbage atomic.Int64 // bytes deleted, replaced or cancelled since the last compact
	orphans int64        // chunks removed by OpenBadger

	// closeMu is held for reading by every operation that calls badger,
	// including an Object's chunk reads, for writing by Close and by
	// release, which must not run while badger may remap or unmap a
	// value-log file; only writes, iterators and GC do that.
	closeMu sync.RWMutex
	closed  bool
	// writeMu is held for reading by every write to badger and for
	// writing by the steps of RunGC (and release): the compaction refuses
	// concurrent writes, and badger's value-log rewrite races them. Reads
	// never take it, so GC does not hold up cache hits. Taken before
	// closeMu.
	writeMu sync.RWMutex

	// leaseMu guards leases and retired, and is held by Get across its
	// manifest read, so that a Delete or Commit that checks for a lease
	// after its transaction either sees Get's lease or Get sees its change.
	leaseMu sync.Mutex
	leases  map[uint64]int       // write id -> open Objects
	retired map[uint64]*manifest // removed while leased: chunks deleted at the last Close

	bg        sync.WaitGroup // deferred chunk deletions and drops of damaged objects
	corrupted atomic.Int64   // chunks that failed their checks

	// verified holds the write ids of objects read whole, every chunk
	// checked, since OpenBadger: their later reads skip the checksums.
	// Damage from a crash or a power loss happened before this process
	// opened the store, so a chunk checked once in it stays good (it is
	// served from the page cache, or moved by GC from checked bytes).
	// Bounded: when full it starts over.
	verifiedMu sync.Mutex
	verified   map[uint64]struct{}
	noVerify   bool // tests only: skip the chunk checksums (to measure them)
	noTrust    bool // tests only: check every read, verified or not

	mapped      atomic.Int64  // bytes through the value-log mappings since the last release
	releaseCh   chan struct{} // wakes the releaser
	releaseStop chan struct{}
	releaseDone chan struct{}

	touchMu sync.Mutex
	touches map[string]touch // accesses not yet written (noteAccess)

	manifests manifestCache // decoded manifests for Get
	small     smallCache    // checked bytes of small objects
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
	// Sums holds the CRC-32C (Castagnoli) of every chunk, 4 bytes each,
	// big-endian, each over the chunk's key and then its bytes, so that a
	// value that is intact but belongs to another chunk fails too.
	// Manifests written before it existed have none; their chunks are
	// checked by length only.
	Sums []byte `json:"crc32c,omitempty"`
}

// chunkLen is the length chunk n of the object must have.
func (m *manifest) chunkLen(n int64) int {
	if n < int64(m.Chunks)-1 {
		return int(m.ChunkSize)
	}
	return int(m.Size - n*m.ChunkSize)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// chunkSum is what Sums holds for a chunk: CRC-32C of its key, then its bytes.
func chunkSum(key, v []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, key), castagnoli, v)
}

// check reports how chunk n, read as v, differs from what was written.
func (m *manifest) check(n int64, key, v []byte, verify bool) error {
	if want := m.chunkLen(n); len(v) != want {
		return fmt.Errorf("chunk %d has %d bytes, want %d", n, len(v), want)
	}
	if !verify || len(m.Sums) != 4*int(m.Chunks) {
		return nil
	}
	if got, want := chunkSum(key, v), binary.BigEndian.Uint32(m.Sums[4*n:]); got != want {
		return fmt.Errorf("chunk %d has CRC-32C %08x, want %08x", n, got, want)
	}
	return nil
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
		WithVerifyValueChecksum(opt.VerifyValueChecksum).
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
		leases:      map[uint64]int{},
		retired:     map[uint64]*manifest{},
		verified:    map[uint64]struct{}{},
		manifests:   manifestCache{m: map[string]*manifest{}},
		small:       smallCache{m: map[uint64][]byte{}},
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
			if done, err := b.beginWrite(context.Background()); err == nil {
				b.writeTouches()
				done()
			}
		case <-b.releaseCh:
			// writeMu first: waiting for a GC step there holds up no reader.
			b.writeMu.Lock()
			b.closeMu.Lock()
			if !b.closed {
				releaseMapped(b.dir)
			}
			b.closeMu.Unlock()
			b.writeMu.Unlock()
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

// beginWrite is begin for operations that write to badger: it also keeps
// them out of RunGC's steps.
func (b *Badger) beginWrite(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.writeMu.RLock()
	done, err := b.begin(ctx)
	if err != nil {
		b.writeMu.RUnlock()
		return nil, err
	}
	return func() { done(); b.writeMu.RUnlock() }, nil
}

// background runs fn in a goroutine that Close waits for, unless the store
// is closed (then fn's work is left to the next OpenBadger: orphan chunks).
// The caller must hold none of the store's locks.
func (b *Badger) background(fn func()) {
	b.closeMu.RLock()
	defer b.closeMu.RUnlock()
	if b.closed {
		return
	}
	b.bg.Add(1)
	go func() {
		defer b.bg.Done()
		fn()
	}()
}

// Close implements Store. Objects still open fail their reads afterwards;
// the chunks of those deleted or replaced while open are removed by the
// next OpenBadger.
func (b *Badger) Close() error {
	b.closeMu.Lock()
	if b.closed {
		b.closeMu.Unlock()
		return nil
	}
	b.closed = true
	b.closeMu.Unlock()
	close(b.releaseStop)
	<-b.releaseDone
	b.bg.Wait()
	b.closeMu.Lock() // waits for the operations in flight
	defer b.closeMu.Unlock()
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
		in.Leased = b.leased(m.ID)
		return nil
	})
	if err != nil {
		return Info{}, fmt.Errorf("cache: stat %q: %w", key, wrapErr(err))
	}
	return in, nil
}

// Get implements Store. The returned Object holds a lease on the object
// it found: later commits and deletes of the key do not affect it, and its
// chunks stay in the store until it is closed. It holds no badger
// transaction or lock between reads, so a caller that is slow to read (or
// never closes it) delays no other operation; only the space of an object
// deleted or replaced meanwhile waits for its Close.
func (b *Badger) Get(ctx context.Context, key string) (Object, error) {
	done, err := b.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	now := time.Now()
	b.leaseMu.Lock()
	m, touched, gen := b.manifests.get(key, now, b.opt.AccessedGranularity)
	if m == nil {
		err = b.db.View(func(txn *badger.Txn) error {
			var err error
			m, err = getManifest(txn, key)
			return err
		})
		if err == nil {
			touched = now.Sub(m.Accessed) >= b.opt.AccessedGranularity
			if touched {
				m.Accessed = now
			}
			b.manifests.put(key, m, gen)
		}
	}
	if err == nil {
		b.leases[m.ID]++
	}
	b.leaseMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("cache: get %q: %w", key, wrapErr(err))
	}
	if touched {
		b.noteAccess(key, m.ID, now)
	}
	return &badgerObject{b: b, key: key, m: *m, cur: -1, trusted: b.isVerified(m.ID)}, nil
}

// manifestCache keeps the decoded manifests of the objects Get found, so
// that a hit costs no badger transaction and no JSON decoding. Every
// change of a manifest forgets its key right after its transaction
// commits (before the lease check of a Delete or Commit, so that Get's
// lease, taken under leaseMu with the lookup, is seen as before); a
// manifest read from badger is kept only if nothing was forgotten since
// the lookup that missed, so a stale read never enters. Bounded: when
// full it starts over.
type manifestCache struct {
	mu  sync.Mutex
	gen uint64 // forgets so far
	m   map[string]*manifest
}

// maxManifests bounds manifestCache (a manifest is ~300 bytes plus 4 per chunk).
const maxManifests = 1 << 14

// get returns a copy of key's manifest, or nil, and the generation to
// hand put after a miss. A due access time is set in the cached copy at
// once (touched), so that one Get per granularity period notes it.
func (c *manifestCache) get(key string, now time.Time, gran time.Duration) (m *manifest, touched bool, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cm, ok := c.m[key]
	if !ok {
		return nil, false, c.gen
	}
	if now.Sub(cm.Accessed) >= gran {
		cm.Accessed, touched = now, true
	}
	cp := *cm
	return &cp, touched, c.gen
}

// put keeps a copy of m unless a key was forgotten since gen.
func (c *manifestCache) put(key string, m *manifest, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.m) >= maxManifests {
		clear(c.m)
	}
	cp := *m
	c.m[key] = &cp
}

// forget drops keys, whose manifests changed or went.
func (c *manifestCache) forget(keys ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, k := range keys {
		delete(c.m, k)
	}
}

// maxVerified bounds Badger.verified (about 3 MiB).
const maxVerified = 1 << 16

func (b *Badger) isVerified(id uint64) bool {
	if b.noTrust {
		return false
	}
	b.verifiedMu.Lock()
	defer b.verifiedMu.Unlock()
	_, ok := b.verified[id]
	return ok
}

func (b *Badger) setVerified(id uint64, on bool) {
	b.verifiedMu.Lock()
	defer b.verifiedMu.Unlock()
	switch {
	case !on:
		delete(b.verified, id)
	case len(b.verified) >= maxVerified:
		clear(b.verified)
		fallthrough
	default:
		b.verified[id] = struct{}{}
	}
}

// leased reports whether an Object of write id is open.
func (b *Badger) leased(id uint64) bool {
	b.leaseMu.Lock()
	defer b.leaseMu.Unlock()
	return b.leases[id] > 0
}

// release ends a lease on write id; at the last one, the chunks of an
// object removed meanwhile are deleted (in the background).
func (b *Badger) release(id uint64) {
	b.leaseMu.Lock()
	var m *manifest
	if b.leases[id]--; b.leases[id] <= 0 {
		delete(b.leases, id)
		m = b.retired[id]
		delete(b.retired, id)
	}
	b.leaseMu.Unlock()
	if m != nil {
		b.background(func() { b.reap(m) })
	}
}

// retire accounts for an object that a committed transaction removed or
// replaced, and deletes its chunks, or leaves that to the last Close of
// the Objects that read it. The caller holds beginWrite; chunks a failure
// leaves behind are orphans, which the next OpenBadger removes.
func (b *Badger) retire(old *manifest) error {
	b.objects.Add(-1)
	b.bytes.Add(-old.Size)
	b.leaseMu.Lock()
	leased := b.leases[old.ID] > 0
	if leased {
		b.retired[old.ID] = old
	}
	b.leaseMu.Unlock()
	if leased {
		return nil
	}
	return b.deleteChunks(old)
}

// reap deletes the chunks of an object retired while leased.
func (b *Badger) reap(m *manifest) {
	done, err := b.beginWrite(context.Background())
	if err != nil {
		return // closed: the chunks are orphans now
	}
	defer done()
	if err := b.deleteChunks(m); err != nil {
		b.warn("cache: delete chunks of a closed object", "id", m.ID, "err", err)
	}
}

// deleteChunks deletes all of m's chunks. The caller holds beginWrite.
func (b *Badger) deleteChunks(m *manifest) error {
	b.small.drop(m.ID)
	b.setVerified(m.ID, false)
	b.garbage.Add(max(m.Size, 1))
	return b.deleteRange(m.ID, 0, m.Chunks)
}

func (b *Badger) warn(msg string, args ...any) {
	if b.opt.Logger != nil {
		b.opt.Logger.Warn(msg, args...)
	}
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
		b.manifests.forget(keys[:n]...)
		keys = keys[n:]
	}
}

// UpdateMeta implements Store.
func (b *Badger) UpdateMeta(ctx context.Context, key string, fn func(*Meta)) error {
	done, err := b.beginWrite(ctx)
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
	b.manifests.forget(key)
	if err != nil {
		return fmt.Errorf("cache: update meta of %q: %w", key, wrapErr(err))
	}
	return nil
}

// Delete implements Store. The object's chunks go at once, or at the last
// Close of the Objects reading it.
func (b *Badger) Delete(ctx context.Context, key string) error {
	done, err := b.beginWrite(ctx)
	if err != nil {
		return err
	}
	defer done()
	var old *manifest
	err = b.update(ctx, func(txn *badger.Txn) error {
		old = nil
		m, err := getManifest(txn, key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		old = m
		return txn.Delete(manifestKey(key))
	})
	b.manifests.forget(key)
	if err != nil {
		return fmt.Errorf("cache: delete %q: %w", key, wrapErr(err))
	}
	if old != nil {
		if err := b.retire(old); err != nil {
			return fmt.Errorf("cache: delete %q: %w", key, err)
		}
	}
	return nil
}

// dropDamaged deletes key if it still holds the object of write id, whose
// chunk failed its checks, so that the next Get misses and the object is
// fetched again. Its chunks go at the last Close, as for any Delete.
func (b *Badger) dropDamaged(key string, id uint64) {
	done, err := b.beginWrite(context.Background())
	if err != nil {
		return
	}
	defer done()
	var old *manifest
	err = b.update(context.Background(), func(txn *badger.Txn) error {
		old = nil
		m, err := getManifest(txn, key)
		if err != nil || m.ID != id {
			return nil // gone or replaced meanwhile; a bad manifest is for Delete
		}
		old = m
		return txn.Delete(manifestKey(key))
	})
	b.manifests.forget(key)
	if err == nil && old != nil {
		err = b.retire(old)
	}
	if err != nil {
		b.warn("cache: drop damaged object", "key", key, "err", err)
		return
	}
	if old != nil {
		b.warn("cache: object failed its checksum; dropped", "key", key)
	}
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
			in.Leased = b.leased(m.ID)
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
	buf    []byte // the chunk being filled (from b.pool)
	sums   []byte // chunkSum of each chunk written, for the manifest
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
			w.buf = w.b.pool.get(cs)
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
// before Update returns, so the buffer is reused).
func (w *badgerWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	done, err := w.b.beginWrite(context.Background())
	if err != nil {
		return err
	}
	defer done()
	k := chunkKey(w.id, w.chunks)
	if err := w.b.db.Update(func(txn *badger.Txn) error { return txn.Set(k, w.buf) }); err != nil {
		return fmt.Errorf("cache: write chunk of %q: %w", w.key, wrapErr(err))
	}
	w.sums = binary.BigEndian.AppendUint32(w.sums, chunkSum(k, w.buf))
	w.chunks++
	w.b.noteMapped(int64(len(w.buf)))
	w.buf = w.buf[:0]
	return nil
}

// dropBuf gives the chunk buffer back to the pool.
func (w *badgerWriter) dropBuf() {
	w.b.pool.put(w.buf)
	w.buf = nil
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
	w.dropBuf()
	done, err := w.b.beginWrite(context.Background())
	if err != nil {
		return err
	}
	defer done()
	now := time.Now()
	m := &manifest{
		Size: w.size, Chunks: w.chunks, ChunkSize: int64(w.b.opt.ChunkSize), ID: w.id,
		Meta: w.meta, Stored: now, Accessed: now, Sums: w.sums,
	}
	var old *manifest
	err = w.b.update(ctx, func(txn *badger.Txn) error {
		old = nil
		prev, err := getManifest(txn, w.key)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			old = prev
		}
		return putManifest(txn, w.key, m)
	})
	w.b.manifests.forget(w.key)
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
		_ = w.b.retire(old)
	}
	return nil
}

func (w *badgerWriter) Cancel() error {
	if w.done {
		return nil
	}
	w.done = true
	w.dropBuf()
	if w.chunks == 0 {
		return nil
	}
	w.b.garbage.Add(int64(w.chunks) * int64(w.b.opt.ChunkSize))
	done, err := w.b.beginWrite(context.Background())
	if err != nil {
		return nil // the chunks are orphans; the next OpenBadger removes them
	}
	defer done()
	if err := w.b.deleteRange(w.id, 0, w.chunks); err != nil {
		return fmt.Errorf("cache: cancel %q: %w", w.key, err)
	}
	return nil
}

// badgerObject reads a committed object under a lease (see Badger): chunk
// by chunk, each copied out of badger into buf and checked before any of
// it is handed out.
type badgerObject struct {
	b   *Badger
	key string
	m   manifest

	mu      sync.Mutex
	off     int64  // Read/Seek position
	cur     int64  // index of the chunk buf holds, or -1
	buf     []byte // chunk cur, checked (from b.pool)
	trusted bool   // in b.verified: checksums skipped, lengths still checked
	inOrder int64  // chunks 0..inOrder-1 were checked, so far in order
	closed  bool
}

func (o *badgerObject) Info() Info { return o.m.info(o.key) }

// chunk returns chunk n, checked. o.mu must be held.
func (o *badgerObject) chunk(n int64) ([]byte, error) {
	if n == o.cur {
		return o.buf, nil
	}
	small := o.m.Chunks == 1 && o.m.Size <= maxSmallObject
	if small {
		if v, ok := o.b.small.get(o.m.ID); ok {
			return v, nil
		}
	}
	o.cur = -1
	want := o.m.chunkLen(n)
	if cap(o.buf) < want {
		o.b.pool.put(o.buf)
		o.buf = o.b.pool.get(want)
	}
	k := chunkKey(o.m.ID, uint32(n))
	var bad error
	// A second try covers a value-log file that GC deleted between the
	// lookup and the copy (the chunk is then at its new place).
	for range 2 {
		var err error
		o.buf, err = o.b.readChunk(k, o.buf[:0])
		if err != nil && !errors.Is(err, errChunkMissing) {
			return nil, fmt.Errorf("cache: read %q: %w", o.key, err)
		}
		if bad = err; bad == nil {
			bad = o.m.check(n, k, o.buf, !o.b.noVerify && !o.trusted)
		}
		if bad == nil {
			o.cur = n
			if n == o.inOrder && !o.trusted && !o.b.noVerify {
				if o.inOrder++; o.inOrder == int64(o.m.Chunks) {
					o.b.setVerified(o.m.ID, true)
				}
			}
			if small && !o.b.noVerify && !o.b.noTrust {
				o.b.small.put(o.m.ID, o.buf)
			}
			return o.buf, nil
		}
	}
	o.b.corrupted.Add(1)
	key, id := o.key, o.m.ID
	o.b.background(func() { o.b.dropDamaged(key, id) })
	return nil, fmt.Errorf("cache: read %q: %w: %v", o.key, ErrCorrupt, bad)
}

var errChunkMissing = errors.New("chunk missing")

// readChunk copies the value of chunk key k into dst, in a read
// transaction of its own that ends before it returns.
func (b *Badger) readChunk(k, dst []byte) ([]byte, error) {
	done, err := b.begin(context.Background())
	if err != nil {
		return dst, err
	}
	defer done()
	err = b.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return errChunkMissing
		}
		if err != nil {
			return err
		}
		// A value badger fails to read comes back empty, without an error;
		// the length check catches it.
		dst, err = item.ValueCopy(dst)
		return err
	})
	if err != nil && !errors.Is(err, errChunkMissing) {
		err = wrapErr(err)
	}
	b.noteMapped(int64(len(dst)))
	return dst, err
}

// readAt fills p from offset off. o.mu must be held.
func (o *badgerObject) readAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("cache: negative offset")
	}
	if off >= o.m.Size && !o.closed {
		return 0, io.EOF
	}
	var done int
	n, err := o.walk(off, int64(len(p)), func(v []byte) (int, error) {
		c := copy(p[done:], v)
		done += c
		return c, nil
	})
	if err == nil && n < int64(len(p)) {
		err = io.EOF
	}
	return int(n), err
}

// walk hands fn the object's bytes from off on, chunk by chunk and at most
// limit bytes in all, from the object's checked copy of each chunk (fn must
// not keep it). It returns the bytes fn took.
func (o *badgerObject) walk(off, limit int64, fn func(v []byte) (int, error)) (int64, error) {
	if o.closed {
		return 0, errors.New("cache: read of closed object")
	}
	cs := o.m.ChunkSize
	var done int64
	for done < limit && off < o.m.Size {
		v, err := o.chunk(off / cs)
		if err != nil {
			return done, err
		}
		v = v[off%cs:]
		if rest := limit - done; int64(len(v)) > rest {
			v = v[:rest]
		}
		n, err := fn(v)
		done += int64(n)
		off += int64(n)
		if err == nil && n < len(v) {
			err = io.ErrShortWrite
		}
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

// WriteTo writes the object from the current offset to its end from its
// checked chunk copies, without a further buffer (io.WriterTo). No badger
// lock is held while w.Write runs.
func (o *badgerObject) WriteTo(w io.Writer) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, err := o.walk(o.off, o.m.Size-o.off, w.Write)
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
	o.b.pool.put(o.buf)
	o.buf, o.cur = nil, -1
	o.b.release(o.m.ID)
	return nil
}

// smallCache keeps a copy of the checked bytes of small objects (one
// chunk of at most maxSmallObject bytes), by write id, so that a hit of a
// small object costs no badger transaction and no copy out of the value
// log. A write id's bytes never change, so an entry is never stale; the
// entries of objects deleted or replaced go when their chunks are deleted.
// Bounded by maxSmallBytes: when full it starts over.
type smallCache struct {
	mu    sync.Mutex
	m     map[uint64][]byte
	bytes int
}

const (
	maxSmallObject = 64 << 10
	maxSmallBytes  = 8 << 20
)

func (c *smallCache) get(id uint64) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[id]
	return v, ok
}

// put keeps a copy of v, the checked bytes of object id.
func (c *smallCache) put(id uint64, v []byte) {
	cp := bytes.Clone(v)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[id]; ok {
		return
	}
	if c.bytes+len(cp) > maxSmallBytes {
		clear(c.m)
		c.bytes = 0
	}
	c.m[id] = cp
	c.bytes += len(cp)
}

func (c *smallCache) drop(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bytes -= len(c.m[id])
	delete(c.m, id)
}

// bufPool keeps chunk buffers for writers and Objects, in size classes
// from 4 KiB up, each 4 times the last, so that small objects do not take
// a whole chunk's worth. A buffer larger than the largest class is not kept.
type bufPool struct {
	classes [7]sync.Pool // 4 KiB ... 16 MiB
}

const minBufClass = 4 << 10

// get returns an empty buffer with room for n bytes.
func (p *bufPool) get(n int) []byte {
	size := minBufClass
	for i := range p.classes {
		if n <= size {
			if b, ok := p.classes[i].Get().(*[]byte); ok {
				return (*b)[:0]
			}
			return make([]byte, 0, size)
		}
		size *= 4
	}
	return make([]byte, 0, n)
}

// put gives back a buffer from get; others are dropped.
func (p *bufPool) put(b []byte) {
	size := minBufClass
	for i := range p.classes {
		if cap(b) == size {
			b = b[:0]
			p.classes[i].Put(&b)
			return
		}
		size *= 4
	}
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
