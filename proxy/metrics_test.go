package proxy

import (
	"bufio"
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

// scrape reads /metrics (without a token) into series → value, the series
// written as in the text format: name{label="v",...}.
func scrape(t testing.TB, a *testAdmin) map[string]float64 {
	t.Helper()
	status, hdr, body := a.do(t, "GET", "/metrics", "", nil)
	if status != http.StatusOK {
		t.Fatalf("/metrics: %d %s", status, body)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("/metrics Content-Type %q", ct)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func fileSize(t testing.TB, dir, rel string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestMetricsHooks(t *testing.T) {
	up := newFakeUpstream(t, newRepoDir(t, "", testenv.InitialRPMs()))
	a := startAdmin(t, []config.Repo{testRepo("test", up.URL(), time.Minute)}, nil)

	a.srv.metrics.observeEviction(3, 3000)
	a.srv.metrics.observeEviction(0, 0)
	m := scrape(t, a)
	for series, want := range map[string]float64{
		`dnfproxy_evictions_total`:     3,
		`dnfproxy_evicted_bytes_total`: 3000,
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	// Requests to unknown repos carry no repo label.
	a.get(t, "/nope/x.rpm")
	for series := range scrape(t, a) {
		if strings.Contains(series, `repo="nope"`) || strings.Contains(series, `repo=""`) {
			t.Errorf("series for an unknown repo: %s", series)
		}
	}
	// The metrics are the Server's own, not the global registry's: a
	// second Server in the process has its own counts.
	b := startAdmin(t, []config.Repo{testRepo("test", up.URL(), time.Minute)}, nil)
	if _, ok := scrape(t, b)[`dnfproxy_evictions_total`]; !ok {
		t.Error("second server has no metrics")
	} else if v := scrape(t, b)[`dnfproxy_evictions_total`]; v != 0 {
		t.Errorf("second server shares evictions: %v", v)
	}
}

func TestMetricsNilSafe(t *testing.T) {
	var m *metrics
	m.fillDone("x", time.Second, 1)
	m.upstreamError("x", "y")
	s := &Server{}
	s.metrics.observeEviction(1, 1)
}

// TestMetricsDivergentPackages scrapes the divergent-package gauge of a
// repo served with rules, before and after the rules change.
func TestMetricsDivergentPackages(t *testing.T) {
	f := newViewFixture(t, config.ModeAnnotate, almaRule)
	viewFiles(t, f.p, "/test/el9/")
	gauge := func() map[string]float64 {
		out := map[string]float64{}
		mfs, err := f.p.srv.metrics.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "dnfproxy_divergent_packages" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				out[labels["repo"]+"/"+labels["class"]] = m.GetGauge().GetValue()
			}
		}
		return out
	}
	if got := gauge(); len(got) != 2 || got["test/abi-changed"] != 1 || got["test/patched"] != 1 {
		t.Fatalf("divergent packages %v, want test/abi-changed 1 and test/patched 1", got)
	}
	// Without the rule only the vendor marker remains.
	if err := os.WriteFile(f.p.cfg.RuleFiles[0], []byte("rules: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.p.srv.LoadRules(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		viewFiles(t, f.p, "/test/el9/")
		got := gauge()
		if len(got) == 1 && got["test/patched"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the rules change: %v, want only test/patched 1", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
