package evict

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
)

// pinFunc adapts a function to Pinner.
type pinFunc func(add func(string))

func (f pinFunc) Pins(add func(string)) { f(add) }

func put(t *testing.T, s cache.Store, key string, n int) {
	t.Helper()
	w, err := s.Create(context.Background(), key, cache.Meta{Fetched: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Cancel()
	if _, err := w.Write(bytes.Repeat([]byte{'x'}, n)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func has(s cache.Store, key string) bool {
	_, err := s.Stat(context.Background(), key)
	return !errors.Is(err, cache.ErrNotFound)
}

// TestPinsAreKeptWhateverTheirAge: what an owner pins stays, however old;
// everything else goes, least recently used first, down to the low water
// mark. No time-based grace is involved: the objects are committed before
// the round and none of them is "fresh" protection.
func TestPinsAreKeptWhateverTheirAge(t *testing.T) {
	s := cache.NewMemory()
	for i := range 10 {
		put(t, s, fmt.Sprintf("obj/r/k%d", i), 1000)
	}
	pinned := map[string]bool{"obj/r/k0": true, "obj/r/k5": true}
	e := New(s, 3000, slog.New(slog.DiscardHandler), nil, pinFunc(func(add func(string)) {
		for k := range pinned {
			add(k)
		}
	}))
	res, err := e.Evict(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for k := range pinned {
		if !has(s, k) {
			t.Errorf("pinned %s was evicted", k)
		}
	}
	if res.StoreBytes > 2700 {
		t.Errorf("store holds %d bytes after the round, want at most 90%% of 3000", res.StoreBytes)
	}
	if res.Pinned != 2 {
		t.Errorf("round counted %d pinned objects, want 2", res.Pinned)
	}
}

// TestKeyPinnedDuringTheRoundIsKept: a refresh that finds a file already in
// the store pins it after the round took its list (the case a time-based
// grace used to stand in for): the last look before each deletion keeps it.
func TestKeyPinnedDuringTheRoundIsKept(t *testing.T) {
	s := cache.NewMemory()
	for i := range 10 {
		put(t, s, fmt.Sprintf("md/r/f%d", i), 1000)
	}
	var calls atomic.Int32
	late := pinFunc(func(add func(string)) {
		// Nothing at the start of the round; from the second question on
		// (the refresh has started meanwhile) every file is pinned.
		if calls.Add(1) > 1 {
			for i := range 10 {
				add(fmt.Sprintf("md/r/f%d", i))
			}
		}
	})
	e := New(s, 1000, slog.New(slog.DiscardHandler), nil, late)
	res, err := e.Evict(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Objects != 0 {
		t.Errorf("evicted %d objects that a refresh pinned during the round", res.Objects)
	}
	for i := range 10 {
		if k := fmt.Sprintf("md/r/f%d", i); !has(s, k) {
			t.Errorf("%s evicted", k)
		}
	}
}
