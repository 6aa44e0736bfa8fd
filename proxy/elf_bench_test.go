package proxy

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

// BenchmarkELFLayerCachedP99 measures the p99 latency of cached package
// requests (4 clients) while no ELF pass runs (idle) and while the ELF
// layer compares the libabigail corpus' pairs in the background from a
// cold store (every RPM fetched and read), and reports both and their
// ratio, at concurrency 1 and 2. "elf-off" is the same run with the layer
// off: the scan phase is then only the metadata analyses. Run it once:
//
//	go test -run '^$' -bench ELFLayerCachedP99 -benchtime 1x ./proxy/
func BenchmarkELFLayerCachedP99(b *testing.B) {
	for _, c := range []struct {
		name string
		conc int
	}{{"elf-off", 0}, {"concurrency-1", 1}, {"concurrency-2", 2}} {
		b.Run(c.name, func(b *testing.B) { benchELFP99(b, c.conc) })
	}
}

func benchELFP99(b *testing.B, conc int) {
	_, pairs := libabigailPairs(b)
	testenv.RequireTool(b, "createrepo_c")
	refDir, curDir := b.TempDir(), b.TempDir()
	for _, pr := range pairs {
		testenv.MakeRepo(b, filepath.Join(refDir, pr.id), []string{pr.old})
		testenv.MakeRepo(b, filepath.Join(curDir, pr.id), []string{pr.new})
	}
	testenv.MakeRepo(b, filepath.Join(refDir, "hot"), testenv.InitialRPMs())
	testenv.MakeRepo(b, filepath.Join(curDir, "hot"), testenv.InitialRPMs())
	refUp, curUp := newFakeUpstream(b, refDir), newFakeUpstream(b, curDir)
	repos := elfRepos(refUp.URL(), curUp.URL())
	// Mode off: no view is built when a root's metadata arrives, so the
	// passes start only when the report below asks for the analyses.
	repos[1].Compat.Mode = config.ModeOff
	repos[1].Compat.ELF = config.ELF{Enabled: conc > 0, Concurrency: max(conc, 1)}
	p := startProxy(b, repos, nil)
	hot := p.URL("/alma/hot/Packages/" + filepath.Base(testenv.RPMTool))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	get := func() time.Duration {
		start := time.Now()
		resp, err := client.Get(hot)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %s", hot, resp.Status)
		}
		return time.Since(start)
	}
	get() // cached from now on
	for p.srv.views.ELFPending() {
		time.Sleep(10 * time.Millisecond)
	}
	// measure runs 4 clients until n requests are done or while keep says so.
	measure := func(n int, keep func() bool) []time.Duration {
		var mu sync.Mutex
		var out []time.Duration
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					d := get()
					mu.Lock()
					out = append(out, d)
					done := len(out) >= n || !keep()
					mu.Unlock()
					if done {
						return
					}
				}
			}()
		}
		wg.Wait()
		slices.Sort(out)
		return out
	}
	p99 := func(ds []time.Duration) time.Duration { return ds[len(ds)*99/100] }
	b.ResetTimer()
	for range b.N {
		// Metadata first, so that what runs below is the analyses and
		// the ELF passes they start.
		for _, pr := range pairs {
			for _, name := range []string{"rhel", "alma"} {
				if _, _, err := p.srv.repos[name].gens.Current(context.Background(), pr.id+"/"); err != nil {
					b.Fatal(err)
				}
			}
		}
		idle := measure(4000, func() bool { return true })
		start := time.Now()
		var analysing sync.WaitGroup
		analysing.Add(1)
		go func() {
			defer analysing.Done()
			for _, pr := range pairs {
				if _, err := p.srv.views.Report(context.Background(), "alma", pr.id+"/", true); err != nil {
					b.Error(err)
				}
			}
		}()
		var reportsDone sync.WaitGroup
		reportsDone.Add(1)
		done := make(chan struct{})
		go func() { analysing.Wait(); close(done); reportsDone.Done() }()
		busy := func() bool {
			select {
			case <-done:
				return p.srv.views.ELFPending()
			default:
				return true
			}
		}
		scanning := measure(1<<30, busy)
		scan := time.Since(start)
		reportsDone.Wait()
		if s := p.srv.views.ELFStats(); s.PackagesRead == 0 && conc > 0 {
			b.Fatal("the ELF layer read no package")
		} else {
			b.ReportMetric(float64(s.PayloadBytes)/1e6/scan.Seconds(), "payload-MB/s")
		}
		b.ReportMetric(float64(p99(idle).Microseconds()), "idle-p99-µs")
		b.ReportMetric(float64(p99(scanning).Microseconds()), "scan-p99-µs")
		b.ReportMetric(float64(p99(scanning))/float64(p99(idle)), "p99-ratio")
		b.ReportMetric(float64(len(scanning)), "scan-requests")
		b.ReportMetric(scan.Seconds(), "scan-s")
	}
}
