package fill

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestSpoolReservedBeforeTheBodyArrives: once upstream has announced the
// size, the spool holds disk blocks for all of it while its length still
// counts only the bytes that came (none yet), and the object is served
// and stored whole afterwards.
func TestSpoolReservedBeforeTheBodyArrives(t *testing.T) {
	const size = 24 << 20
	body := bytes.Repeat([]byte("spool-reservation "), size/18+1)[:size]
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.Header().Set("Last-Modified", "Sun Nov  6 08:49:37 1994") // asctime form
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-release
		w.Write(body)
	}))
	defer srv.Close()
	defer close(release)

	ctx := context.Background()
	fl, up, store := fillerOn(t, srv.URL+"/", 0)
	f := fl.Start(Request{Src: up, Repo: "r", Key: "r/big.img", Rel: "big.img", Exp: Expect{Size: -1}})
	if f == nil {
		t.Fatal("Start found the object stored already")
	}
	defer f.Release()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	total, _, err := f.Ready(rctx)
	if err != nil || total != size {
		t.Fatalf("Ready: %d %v, want %d", total, err, size)
	}
	f.mu.Lock()
	fi, err := f.spool.Stat()
	f.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		t.Fatalf("no Stat_t for the spool")
	}
	if fi.Size() != 0 {
		t.Errorf("spool length %d before any byte arrived, want 0 (readers must not see reserved blocks)", fi.Size())
	}
	if got := st.Blocks * 512; got < size {
		t.Errorf("spool has %d bytes of blocks before the body, want at least the announced %d", got, size)
	}

	release <- struct{}{}
	if err := f.Await(rctx); err != nil {
		t.Fatalf("fill: %v", err)
	}
	<-f.done
	r, err := store.Get(ctx, "r/big.img")
	if err != nil {
		t.Fatalf("stored object: %v", err)
	}
	defer r.Close()
	if lm := r.Info().Meta.LastModified; lm != "Sun, 06 Nov 1994 08:49:37 GMT" {
		t.Errorf("stored Last-Modified %q, want upstream's date in the form clients get", lm)
	}
	got := make([]byte, size+1)
	n, _ := r.ReadAt(got, 0)
	if n != size || !bytes.Equal(got[:n], body) {
		t.Fatalf("stored %d bytes, equal %v; want the %d upstream sent", n, bytes.Equal(got[:n], body), size)
	}
}
