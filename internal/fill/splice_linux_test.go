package fill

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/upstream"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// TestUnverifiedBodiesAreSplicedVerifiedOnesRead: a cold miss of a file no
// checksum covers goes from upstream's socket into the spool by
// splice(2), and its follower (over real TCP, so sendfile) and the store
// get exactly upstream's bytes; a file with a checksum is read through
// the hash instead (nothing spliced), and a wrong checksum still fails it.
func TestUnverifiedBodiesAreSplicedVerifiedOnesRead(t *testing.T) {
	const size = 16<<20 + 4321
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{9}).Read(data)
	small := data[:600<<10]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := data
		if r.URL.Path == "/small" {
			body = small
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	defer srv.Close()

	ctx := context.Background()
	fl, up, store := fillerOn(t, srv.URL+"/", 10*time.Second)
	sum := metadata.Checksum{Type: "sha256", Value: fmt.Sprintf("%x", sha256.Sum256(data))}
	wrong := metadata.Checksum{Type: "sha256", Value: fmt.Sprintf("%x", sha256.Sum256(data[1:]))}

	for _, tc := range []struct {
		name        string
		key, rel    string
		exp         Expect
		want        []byte
		wantSpliced bool
		wantErr     error
	}{
		{"no checksum", "r/images/a.img", "big", Expect{Size: -1}, data, true, nil},
		{"known size, no checksum", "r/images/b.img", "big", Expect{Size: size}, data, true, nil},
		{"small, no checksum (read: the connection is kept)", "r/images/c.img", "small", Expect{Size: -1}, small, false, nil},
		{"checksum", "r/Packages/a.rpm", "big", Expect{Size: size, Sum: sum}, data, false, nil},
		{"wrong checksum", "r/Packages/b.rpm", "big", Expect{Size: size, Sum: wrong}, data, false, ErrVerify},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := fl.spliced.Load()
			f := startFill(t, fl, up, tc.key, tc.rel, tc.exp)
			rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			if _, _, err := f.Ready(rctx); err != nil {
				t.Fatalf("Ready: %v", err)
			}
			received, n, cerr := followOverTCP(rctx, t, f)
			ferr := f.Await(rctx)
			spliced := fl.spliced.Load() - before
			if tc.wantErr != nil {
				if ferr == nil || cerr == nil {
					t.Fatalf("fill %v, follower %v: want both to fail with %v", ferr, cerr, tc.wantErr)
				}
				if len(received) >= len(tc.want) {
					t.Errorf("the follower got all %d bytes of a body that failed verification", len(received))
				}
				if spliced != 0 {
					t.Errorf("%d bytes of a body with a checksum were spliced past the hash", spliced)
				}
				return
			}
			if ferr != nil || cerr != nil || n != int64(len(tc.want)) || !bytes.Equal(received, tc.want) {
				t.Fatalf("fill %v, follower %d bytes %v, equal %v", ferr, n, cerr, bytes.Equal(received, tc.want))
			}
			if tc.wantSpliced && spliced < int64(len(tc.want))-(1<<20) {
				t.Errorf("%d of %d bytes were spliced, want all after the first read", spliced, len(tc.want))
			}
			if !tc.wantSpliced && spliced != 0 {
				t.Errorf("%d bytes of a body with a checksum were spliced past the hash", spliced)
			}
			checkStored(t, f, store, tc.key, tc.want)
		})
	}
}

// TestSplicedFillThatStallsStoresNothing: an unverified body that stalls
// while it is spliced fails its fill and its follower (which never gets
// the held-back last byte), and nothing is committed.
func TestSplicedFillThatStallsStoresNothing(t *testing.T) {
	const size, sent = 16 << 20, 6<<20 + 99
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{10}).Read(data)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		w.Write(data[:sent])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)

	ctx := context.Background()
	fl, up, store := fillerOn(t, srv.URL+"/", 300*time.Millisecond)
	f := startFill(t, fl, up, "r/images/stall.img", "stall.img", Expect{Size: -1})
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	received, _, cerr := followOverTCP(rctx, t, f)
	ferr := f.Await(rctx)
	if !errors.Is(ferr, upstream.ErrTimeout) {
		t.Fatalf("fill of a stalled spliced body: %v, want ErrTimeout", ferr)
	}
	if cerr == nil || len(received) >= sent || !bytes.Equal(received, data[:len(received)]) {
		t.Errorf("follower: %v after %d bytes (sent %d), want a failure short of them, equal to what was sent", cerr, len(received), sent)
	}
	if fl.spliced.Load() == 0 {
		t.Error("nothing was spliced before the stall")
	}
	<-f.done
	if _, err := store.Get(ctx, "r/images/stall.img"); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("after a failed spliced fill the store answers %v, want ErrNotFound", err)
	}
}
