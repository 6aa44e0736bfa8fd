// Package cache owns dnfproxy's object store: named byte objects with a
// little metadata, written once and read many times.
//
// Guarantees every Store gives (checked by cachetest.Run):
//   - An object is visible only after its Writer's Commit returns nil; a
//     crash, a Cancel or an error before that leaves no trace a reader can
//     see, never a truncated object.
//   - Commit replaces an existing object under the same key atomically;
//     readers that opened the old object keep reading the old bytes, whole
//     and unchanged, until they close it; the same holds for Delete.
//   - A read never returns bytes other than those committed: a store that
//     finds its stored bytes damaged fails the read with ErrCorrupt.
//   - Get returns an Object that is an io.ReadSeekCloser and io.ReaderAt,
//     so HTTP handlers can use http.ServeContent (Range, HEAD, multi-range).
//   - ErrNotFound is the only "missing" error; backend errors are wrapped
//     and never leak backend types past this package.
package cache

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned when a key has no committed object.
var ErrNotFound = errors.New("cache: object not found")

// ErrCorrupt is returned (wrapped) by a read of an object whose stored bytes
// fail their checksum, e.g. after a power loss damaged the store. The store
// drops such an object, so the next Get misses and it can be fetched again.
var ErrCorrupt = errors.New("cache: stored object is damaged")

// ErrClosed is returned by operations on a closed Store.
var ErrClosed = errors.New("cache: store closed")

// Meta is the metadata stored beside an object's bytes.
type Meta struct {
	ContentType  string    `json:"content_type,omitempty"`
	ETag         string    `json:"etag,omitempty"`          // upstream validator
	LastModified string    `json:"last_modified,omitempty"` // upstream validator
	Checksum     string    `json:"checksum,omitempty"`      // "type:hex" the bytes were verified against
	Fetched      time.Time `json:"fetched,omitempty"`       // last time upstream confirmed the bytes
}

// Info describes a committed object.
type Info struct {
	Key      string
	Size     int64
	Meta     Meta
	Stored   time.Time // when the object was committed
	Accessed time.Time // last Get (coarse: stores may update it lazily)
	// Leased says an Object is open on it now, in stores whose Delete
	// frees an open object's space only at its last Close (the badger
	// store): an evictor gains nothing by deleting it yet. Other stores
	// leave it false.
	Leased bool
}

// Object is an open, committed object.
type Object interface {
	io.ReadSeekCloser
	io.ReaderAt
	Info() Info
}

// Writer receives an object's bytes. Nothing is visible until Commit.
type Writer interface {
	io.Writer
	// Commit makes the object visible atomically, replacing any object
	// under the same key. After Commit, Cancel is a no-op.
	Commit(ctx context.Context) error
	// Cancel discards the bytes written so far. It is idempotent and safe
	// to defer right after Create.
	Cancel() error
}

// Store is the object store. Implementations are safe for concurrent use.
type Store interface {
	// Get opens the committed object under key, or returns ErrNotFound.
	Get(ctx context.Context, key string) (Object, error)
	// Stat describes the committed object under key, or returns ErrNotFound.
	Stat(ctx context.Context, key string) (Info, error)
	// Create starts a new object under key.
	Create(ctx context.Context, key string, meta Meta) (Writer, error)
	// UpdateMeta changes the metadata of a committed object in place.
	UpdateMeta(ctx context.Context, key string, fn func(*Meta)) error
	// Delete removes the object under key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List calls fn for every committed object whose key starts with prefix,
	// in key order, until fn returns an error (which List returns).
	List(ctx context.Context, prefix string, fn func(Info) error) error
	// Close releases the store. Open Objects must be closed first.
	Close() error
}

// Sizer is implemented by stores that keep running totals of what they hold
// (both stores in this package do). The totals count committed objects only.
type Sizer interface {
	Size() (objects int64, bytes int64)
}
