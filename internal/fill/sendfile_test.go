package fill

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/upstream"
)

// fillerOn returns a Filler on a memory store (waited for at the end of
// the test) and the upstream client of base, with timeout (0: default).
func fillerOn(t *testing.T, base string, timeout time.Duration) (*Filler, *upstream.Client, *cache.Memory) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	store := cache.NewMemory()
	fl, err := New(context.Background(), store, t.TempDir(), log, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fl.Wait)
	up, err := upstream.New(upstream.Options{Repo: "r", Bases: []string{base}, Log: log, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return fl, up, store
}

// startFill starts a fill of key from up, released at the end of the test.
func startFill(t *testing.T, fl *Filler, up Source, key, rel string, exp Expect) *Fill {
	t.Helper()
	f := fl.Start(Request{Src: up, Repo: "r", Key: key, Rel: rel, Exp: exp})
	if f == nil {
		t.Fatal("Start found the object stored already")
	}
	t.Cleanup(f.Release)
	return f
}

// checkStored waits until f has ended and checks that the store holds
// exactly want under key; it returns the stored object's meta.
func checkStored(t *testing.T, f *Fill, store cache.Store, key string, want []byte) cache.Meta {
	t.Helper()
	<-f.done
	r, err := store.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("stored object: %v", err)
	}
	defer r.Close()
	got := make([]byte, len(want)+1)
	n, _ := r.ReadAt(got, 0)
	if n != len(want) || !bytes.Equal(got[:n], want) {
		t.Fatalf("stored %d bytes, equal %v; want the %d upstream sent", n, bytes.Equal(got[:n], want), len(want))
	}
	return r.Info().Meta
}

// followOverTCP streams f to a real TCP client (so through sendfile) and
// returns what the client received and what CopyTo said.
func followOverTCP(ctx context.Context, t *testing.T, f *Fill) (received []byte, n int64, err error) {
	t.Helper()
	client, server := tcpPair(t)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(client)
		got <- b
	}()
	n, err = f.CopyTo(ctx, server, nil)
	server.Close()
	return <-got, n, err
}

// growingFill is a Fill whose spool the test writes, as run does.
func growingFill(t *testing.T) *Fill {
	t.Helper()
	sp, err := os.CreateTemp(t.TempDir(), "spool")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return &Fill{req: Request{Key: "k"}, notify: make(chan struct{}), spool: sp, total: -1}
}

func (f *Fill) testAppend(t *testing.T, p []byte) {
	t.Helper()
	if _, err := f.spool.WriteAt(p, f.written); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.written += int64(len(p))
	f.broadcastLocked()
	f.mu.Unlock()
}

// tcpPair returns both ends of a loopback TCP connection, closed at the
// end of the test.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if client, err = net.Dial("tcp", ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	if server, err = ln.Accept(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}

// TestCopyToTCPSendsSpoolSectionsAndHoldsTheLastByte streams a growing
// spool to a real TCP connection (an io.ReaderFrom, so the spool goes
// through sendfile): the client gets every written byte but the last
// before verification, then exactly the content.
func TestCopyToTCPSendsSpoolSectionsAndHoldsTheLastByte(t *testing.T) {
	client, server := tcpPair(t)
	if _, ok := server.(io.ReaderFrom); !ok {
		t.Fatal("a TCP connection is not an io.ReaderFrom")
	}

	data := make([]byte, 3<<20+12345)
	rng := rand.NewChaCha8([32]byte{7})
	rng.Read(data)
	f := growingFill(t)
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := f.CopyTo(context.Background(), server, nil)
		server.(*net.TCPConn).CloseWrite()
		done <- result{n, err}
	}()
	got := make([]byte, 0, len(data))
	readFor := func(d time.Duration) {
		buf := make([]byte, 64<<10)
		client.SetReadDeadline(time.Now().Add(d))
		for {
			n, err := client.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				return
			}
		}
	}
	// Written in uneven steps; the reader keeps up.
	for off := 0; off < len(data); {
		n := min(len(data)-off, 1+int(rng.Uint64()%(700<<10)))
		f.testAppend(t, data[off:off+n])
		off += n
		readFor(50 * time.Millisecond)
	}
	readFor(200 * time.Millisecond)
	if len(got) != len(data)-1 || !bytes.Equal(got, data[:len(data)-1]) {
		t.Fatalf("before verification the client got %d bytes (want %d, the last held back), equal prefix: %v",
			len(got), len(data)-1, bytes.Equal(got, data[:min(len(got), len(data))]))
	}
	f.mu.Lock()
	f.finished = true
	f.broadcastLocked()
	f.mu.Unlock()
	readFor(5 * time.Second)
	r := <-done
	if r.err != nil || r.n != int64(len(data)) || !bytes.Equal(got, data) {
		t.Fatalf("CopyTo: %d %v; client got %d bytes, equal: %v", r.n, r.err, len(got), bytes.Equal(got, data))
	}
}

// TestCopyToTCPFailedFillStops: a fill that fails mid-way ends CopyTo with
// its error and the client never gets the unverified tail.
func TestCopyToTCPFailedFillStops(t *testing.T) {
	client, server := tcpPair(t)
	f := growingFill(t)
	f.testAppend(t, bytes.Repeat([]byte("a"), 100))
	done := make(chan error, 1)
	go func() {
		_, err := f.CopyTo(context.Background(), server, nil)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	f.mu.Lock()
	f.finished, f.err = true, ErrVerify
	f.broadcastLocked()
	f.mu.Unlock()
	if err := <-done; err != ErrVerify {
		t.Fatalf("CopyTo of a failed fill: %v, want ErrVerify", err)
	}
	server.Close()
	b, _ := io.ReadAll(client)
	if len(b) != 99 {
		t.Fatalf("client got %d bytes of a failed fill, want the 99 before the held-back byte", len(b))
	}
}
