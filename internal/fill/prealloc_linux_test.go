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
	f := startFill(t, fl, up, "r/big.img", "big.img", Expect{Size: -1})
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
	if lm := checkStored(t, f, store, "r/big.img", body).LastModified; lm != "Sun, 06 Nov 1994 08:49:37 GMT" {
		t.Errorf("stored Last-Modified %q, want upstream's date in the form clients get", lm)
	}
}
