package upstream

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"
)

// The guard's cost on a fast body: BenchmarkBody/guarded against its
// baseline BenchmarkBody/raw (the same client and server, the body read
// past the wrapper). Compare their MB/s.
func BenchmarkBody(b *testing.B) {
	data := pseudoRandom(32<<20, 9)
	srv := newServer(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", itoa(len(data)))
		w.Write(data)
	})
	for _, mode := range []string{"raw", "guarded", "raw", "guarded"} {
		b.Run(mode, func(b *testing.B) {
			c, err := New(Options{Repo: "bench", Bases: []string{srv.base("/")}, Timeout: 30 * time.Second, MinRate: 1000})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			buf := make([]byte, 256<<10)
			for b.Loop() {
				resp, err := c.Get(context.Background(), "f", nil)
				if err != nil {
					b.Fatal(err)
				}
				var body io.Reader = resp.Body
				if mode == "raw" {
					body = resp.Body.(*guardedBody).body
				}
				for {
					_, err := body.Read(buf) // 256 KiB reads, as the fill reads
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				resp.Body.Close()
			}
		})
	}
}
