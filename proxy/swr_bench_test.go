package proxy

import (
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

// BenchmarkRepomdWhileUpstreamHangs measures the latency of a cached
// repomd.xml past its TTL, with upstream healthy (the baseline) and with
// upstream accepting connections and never answering. It reports p50 and
// p99 in ms; the two sub-benchmarks of one run are the ratio to read.
func BenchmarkRepomdWhileUpstreamHangs(b *testing.B) {
	for _, mode := range []string{"healthy", "hanging"} {
		b.Run(mode, func(b *testing.B) {
			dir := newRepoDir(b, "el9", testenv.InitialRPMs())
			up := newFakeUpstream(b, dir)
			p := startProxy(b, []config.Repo{func() config.Repo {
				r := testRepo("test", up.URL(), 50*time.Millisecond)
				r.Timeout = config.Duration(30 * time.Second)
				return r
			}()}, nil)
			path := "/test/el9/repodata/repomd.xml"
			if status, _, err := p.get(b, path); err != nil || status != http.StatusOK {
				b.Fatalf("warm: %d %v", status, err)
			}
			if mode == "hanging" {
				release := make(chan struct{})
				b.Cleanup(func() { close(release) })
				up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
					select {
					case <-release:
					case <-r.Context().Done():
					}
					return true
				})
			}
			time.Sleep(60 * time.Millisecond) // past the TTL: every request is due
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				resp, err := http.Get(p.URL(path))
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
