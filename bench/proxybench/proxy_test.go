// Package proxybench holds in-process Go benchmarks of the proxy's serving
// paths, for profiling what bench/run.sh measures end to end:
//
//	go test ./bench/proxybench -run '^$' -bench . -cpuprofile cpu.out
//	go tool pprof -top bench/proxybench/proxybench.test cpu.out
//
// Each proxy benchmark has a "Direct" twin that serves the same bytes with
// net/http's file server (sendfile), the in-process stand-in for nginx, so
// ns/op and MB/s are read as ratios. The proxy runs on the badger store
// with the options dnfproxy serve uses, over a real loopback listener.
// BENCH_LARGE_MIB sets the size of the large file (default 64).
package proxybench

import (
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/proxy"
)

func largeSize(b *testing.B) int64 {
	mib := int64(64)
	if v := os.Getenv("BENCH_LARGE_MIB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || n > 4096 {
			b.Fatalf("BENCH_LARGE_MIB=%q: want 1..4096", v)
		}
		mib = n
	}
	return mib << 20
}

// serve runs h on a loopback listener until the benchmark ends.
func serve(b *testing.B, h http.Handler) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// content writes a random large file under dir/images and, when
// createrepo_c is there, a repo of the small testdata RPMs under dir/repo.
func content(b *testing.B, withRepo bool) (dir string, rpms []string) {
	b.Helper()
	dir = b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o755); err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "images", "big.img"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, largeSize(b)); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	if withRepo {
		rpms = []string{
			"dnfpt-app-1.0-1.el9.noarch.rpm", "dnfpt-conflict-1.0-1.noarch.rpm",
			"dnfpt-extra-1.0-1.el9.noarch.rpm", "dnfpt-lib-1.0-1.el9.alma.1.noarch.rpm",
			"dnfpt-lib-1.0-1.el9.noarch.rpm", "dnfpt-tool-2.0-1.el9.noarch.rpm",
		}
		testenv.MakeRepo(b, filepath.Join(dir, "repo"), rpms)
	}
	return dir, rpms
}

// startProxy runs a proxy over upstream on a fresh badger store until the
// benchmark ends.
func startProxy(b *testing.B, upstream string) string {
	b.Helper()
	base, stop := runProxy(b, upstream)
	b.Cleanup(stop)
	return base
}

// runProxy runs a proxy over upstream on a fresh badger store until stop.
func runProxy(b *testing.B, upstream string) (base string, stop func()) {
	b.Helper()
	data := b.TempDir()
	store, err := cache.OpenBadger(filepath.Join(data, "cache"), badgerOptions(b))
	if err != nil {
		b.Fatal(err)
	}
	cfg := config.Default()
	cfg.Storage.Dir = data
	rc := config.NewRepo("bench", upstream+"/")
	rc.MetadataTTL = config.Duration(time.Hour)
	cfg.Repos = []config.Repo{rc}
	log := slog.New(slog.NewTextHandler(io.Discard, nil)) // formatted, then dropped
	srv, err := proxy.New(cfg, store, log)
	if err != nil {
		b.Fatal(err)
	}
	hs := srv.HTTPServer("127.0.0.1:0")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go hs.Serve(ln)
	return "http://" + ln.Addr().String() + "/bench", func() {
		hs.Close()
		srv.Close()
		store.Close()
	}
}

func client() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 256,
	}}
}

// get fetches url and discards the body, failing on a short or bad answer.
func get(b *testing.B, c *http.Client, url string, buf []byte) int64 {
	resp, err := c.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{resp.Body}, buf)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || n != resp.ContentLength {
		b.Fatalf("%s: status %d, %d of %d bytes, %v", url, resp.StatusCode, n, resp.ContentLength, err)
	}
	return n
}

func BenchmarkLargeHit(b *testing.B) {
	dir, _ := content(b, false)
	up := serve(b, http.FileServer(http.Dir(dir)))
	for _, tc := range []struct{ name, base string }{
		{"Direct", up},
		{"Proxy", startProxy(b, up)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c, buf := client(), make([]byte, 256<<10)
			url := tc.base + "/images/big.img"
			b.SetBytes(get(b, c, url, buf)) // warms the proxy
			b.ResetTimer()
			for b.Loop() {
				get(b, c, url, buf)
			}
		})
	}
}

func BenchmarkLargeCold(b *testing.B) {
	dir, _ := content(b, false)
	up := serve(b, http.FileServer(http.Dir(dir)))
	b.Run("Direct", func(b *testing.B) {
		c, buf := client(), make([]byte, 256<<10)
		b.SetBytes(largeSize(b))
		for b.Loop() {
			get(b, c, up+"/images/big.img", buf)
		}
	})
	b.Run("Proxy", func(b *testing.B) {
		c, buf := client(), make([]byte, 256<<10)
		b.SetBytes(largeSize(b))
		for b.Loop() {
			b.StopTimer()
			base, stop := runProxy(b, up) // a fresh store: every GET is a miss
			b.StartTimer()
			get(b, c, base+"/images/big.img", buf)
			b.StopTimer()
			c.CloseIdleConnections()
			stop()
			b.StartTimer()
		}
	})
}

func BenchmarkSmallRPMsParallel(b *testing.B) {
	testenv.RequireTool(b, "createrepo_c")
	dir, rpms := content(b, true)
	up := serve(b, http.FileServer(http.Dir(dir)))
	pb := startProxy(b, up)
	c, buf := client(), make([]byte, 64<<10)
	get(b, c, pb+"/repo/repodata/repomd.xml", buf)
	for _, tc := range []struct{ name, base string }{{"Direct", up}, {"Proxy", pb}} {
		b.Run(tc.name, func(b *testing.B) {
			var urls []string
			for _, r := range rpms {
				urls = append(urls, tc.base+"/repo/Packages/"+r)
				get(b, c, urls[len(urls)-1], buf)
			}
			b.SetParallelism(32) // 64 clients on 2 cores
			b.ResetTimer()
			b.RunParallel(func(p *testing.PB) {
				buf := make([]byte, 64<<10)
				for i := 0; p.Next(); i++ {
					get(b, c, urls[i%len(urls)], buf)
				}
			})
		})
	}
}
