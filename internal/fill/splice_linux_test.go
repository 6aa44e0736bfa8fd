package fill

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
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
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()

	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	store := cache.NewMemory()
	fl, err := New(ctx, store, t.TempDir(), log, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Wait()
	up, err := upstream.New(upstream.Options{Repo: "r", Bases: []string{srv.URL + "/"}, Log: log, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sum := metadata.Checksum{Type: "sha256", Value: fmt.Sprintf("%x", sha256.Sum256(data))}
	wrong := metadata.Checksum{Type: "sha256", Value: fmt.Sprintf("%x", sha256.Sum256(data[1:]))}

	for _, tc := range []struct {
		name        string
		key         string
		exp         Expect
		wantSpliced bool
		wantErr     error
	}{
		{"no checksum", "r/images/a.img", Expect{Size: -1}, true, nil},
		{"checksum", "r/Packages/a.rpm", Expect{Size: size, Sum: sum}, false, nil},
		{"wrong checksum", "r/Packages/b.rpm", Expect{Size: size, Sum: wrong}, false, ErrVerify},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := fl.spliced.Load()
			f := fl.Start(Request{Src: up, Repo: "r", Key: tc.key, Rel: "f", Exp: tc.exp})
			if f == nil {
				t.Fatal("Start found the object stored already")
			}
			defer f.Release()
			rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			if _, _, err := f.Ready(rctx); err != nil {
				t.Fatalf("Ready: %v", err)
			}
			client, server := tcpPair(t)
			got := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(client)
				got <- b
			}()
			n, cerr := f.CopyTo(rctx, server, nil)
			server.Close()
			received := <-got
			ferr := f.Await(rctx)
			spliced := fl.spliced.Load() - before
			if tc.wantErr != nil {
				if ferr == nil || cerr == nil {
					t.Fatalf("fill %v, follower %v: want both to fail with %v", ferr, cerr, tc.wantErr)
				}
				if len(received) >= size {
					t.Errorf("the follower got all %d bytes of a body that failed verification", len(received))
				}
				if spliced != 0 {
					t.Errorf("%d bytes of a body with a checksum were spliced past the hash", spliced)
				}
				return
			}
			if ferr != nil || cerr != nil || n != size || !bytes.Equal(received, data) {
				t.Fatalf("fill %v, follower %d bytes %v, equal %v", ferr, n, cerr, bytes.Equal(received, data))
			}
			if tc.wantSpliced && spliced < size-(1<<20) {
				t.Errorf("%d of %d bytes were spliced, want all after the first read", spliced, size)
			}
			if !tc.wantSpliced && spliced != 0 {
				t.Errorf("%d bytes of a body with a checksum were spliced past the hash", spliced)
			}
			<-f.done
			r, err := store.Get(ctx, tc.key)
			if err != nil {
				t.Fatalf("stored object: %v", err)
			}
			defer r.Close()
			stored := make([]byte, size+1)
			if m, _ := r.ReadAt(stored, 0); m != size || !bytes.Equal(stored[:m], data) {
				t.Fatalf("stored %d bytes, equal %v", m, bytes.Equal(stored[:m], data))
			}
		})
	}
}
