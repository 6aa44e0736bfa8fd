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

	a.srv.ObserveEviction(3, 3000)
	a.srv.ObserveEviction(0, 0)
	a.srv.SetDivergent("test", map[string]int{"abi-changed": 2, "patched": 5})
	m := scrape(t, a)
	for series, want := range map[string]float64{
		`dnfproxy_evictions_total`:                                     3,
		`dnfproxy_evicted_bytes_total`:                                 3000,
		`dnfproxy_divergent_packages{class="abi-changed",repo="test"}`: 2,
		`dnfproxy_divergent_packages{class="patched",repo="test"}`:     5,
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	// A new report replaces the repo's classes.
	a.srv.SetDivergent("test", map[string]int{"abi-changed": 1})
	m = scrape(t, a)
	if _, ok := m[`dnfproxy_divergent_packages{class="patched",repo="test"}`]; ok {
		t.Error("a class missing from the new report is still exported")
	}
	if m[`dnfproxy_divergent_packages{class="abi-changed",repo="test"}`] != 1 {
		t.Error("abi-changed not updated")
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
	s.ObserveEviction(1, 1)
	s.SetDivergent("x", map[string]int{"patched": 1})
}
