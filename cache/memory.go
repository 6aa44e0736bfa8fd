package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// Memory is a Store that keeps everything in memory. It is meant for tests:
// nothing survives the process. The zero value is not usable; use NewMemory.
type Memory struct {
	mu      sync.RWMutex
	objects map[string]*memObject // committed objects; a memObject is immutable once stored here
	bytes   int64
	closed  bool
}

// memObject is a committed object. data and stored never change after commit;
// meta and accessed are guarded by Memory.mu.
type memObject struct {
	data     []byte
	meta     Meta
	stored   time.Time
	accessed time.Time
}

var (
	_ Store = (*Memory)(nil)
	_ Sizer = (*Memory)(nil)
)

// NewMemory returns an empty in-memory Store.
func NewMemory() *Memory {
	return &Memory{objects: make(map[string]*memObject)}
}

func (m *Memory) info(key string, o *memObject) Info {
	return Info{Key: key, Size: int64(len(o.data)), Meta: o.meta, Stored: o.stored, Accessed: o.accessed}
}

// lock takes the store's lock (for writing or reading) after checking
// ctx, and fails with ErrClosed on a closed store.
func (m *Memory) lock(ctx context.Context, write bool) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lock, unlock := m.mu.RLock, m.mu.RUnlock
	if write {
		lock, unlock = m.mu.Lock, m.mu.Unlock
	}
	lock()
	if m.closed {
		unlock()
		return nil, ErrClosed
	}
	return unlock, nil
}

// Get implements Store.
func (m *Memory) Get(ctx context.Context, key string) (Object, error) {
	unlock, err := m.lock(ctx, true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	o, ok := m.objects[key]
	if !ok {
		return nil, ErrNotFound
	}
	o.accessed = time.Now()
	return &memReader{Reader: bytes.NewReader(o.data), info: m.info(key, o)}, nil
}

// Stat implements Store.
func (m *Memory) Stat(ctx context.Context, key string) (Info, error) {
	unlock, err := m.lock(ctx, false)
	if err != nil {
		return Info{}, err
	}
	defer unlock()
	o, ok := m.objects[key]
	if !ok {
		return Info{}, ErrNotFound
	}
	return m.info(key, o), nil
}

// Create implements Store.
func (m *Memory) Create(ctx context.Context, key string, meta Meta) (Writer, error) {
	unlock, err := m.lock(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return &memWriter{m: m, key: key, meta: meta}, nil
}

// UpdateMeta implements Store.
func (m *Memory) UpdateMeta(ctx context.Context, key string, fn func(*Meta)) error {
	unlock, err := m.lock(ctx, true)
	if err != nil {
		return err
	}
	defer unlock()
	o, ok := m.objects[key]
	if !ok {
		return ErrNotFound
	}
	meta := o.meta
	fn(&meta)
	o.meta = meta
	return nil
}

// Delete implements Store.
func (m *Memory) Delete(ctx context.Context, key string) error {
	unlock, err := m.lock(ctx, true)
	if err != nil {
		return err
	}
	defer unlock()
	if o, ok := m.objects[key]; ok {
		m.bytes -= int64(len(o.data))
		delete(m.objects, key)
	}
	return nil
}

// List implements Store. fn runs without the store's lock held, so it may
// call back into the store; it sees a snapshot of the matching objects.
func (m *Memory) List(ctx context.Context, prefix string, fn func(Info) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.RLock()
	if m.closed {
		m.mu.RUnlock()
		return ErrClosed
	}
	var infos []Info
	for k, o := range m.objects {
		if strings.HasPrefix(k, prefix) {
			infos = append(infos, m.info(k, o))
		}
	}
	m.mu.RUnlock()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Key < infos[j].Key })
	for _, in := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(in); err != nil {
			return err
		}
	}
	return nil
}

// Size implements Sizer.
func (m *Memory) Size() (objects int64, bytes int64) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return int64(len(m.objects)), m.bytes
}

// Close implements Store.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.objects = nil
	m.bytes = 0
	return nil
}

type memReader struct {
	*bytes.Reader
	info Info
}

func (r *memReader) Info() Info   { return r.info }
func (r *memReader) Close() error { return nil }

var errWriterDone = errors.New("cache: writer already committed or cancelled")

type memWriter struct {
	m    *Memory
	key  string
	meta Meta
	buf  bytes.Buffer
	done bool
}

func (w *memWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, errWriterDone
	}
	return w.buf.Write(p)
}

func (w *memWriter) Commit(ctx context.Context) error {
	if w.done {
		return errWriterDone
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m := w.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	w.done = true
	now := time.Now()
	// Copy to a right-sized slice: readers of the object share it.
	data := bytes.Clone(w.buf.Bytes())
	if data == nil {
		data = []byte{}
	}
	w.buf = bytes.Buffer{}
	if old, ok := m.objects[w.key]; ok {
		m.bytes -= int64(len(old.data))
	}
	m.objects[w.key] = &memObject{data: data, meta: w.meta, stored: now, accessed: now}
	m.bytes += int64(len(data))
	return nil
}

func (w *memWriter) Cancel() error {
	if !w.done {
		w.done = true
		w.buf = bytes.Buffer{}
	}
	return nil
}

var _ io.ReaderAt = (*memReader)(nil)
