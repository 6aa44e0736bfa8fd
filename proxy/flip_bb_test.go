package proxy_test

// The flip-under-load test (issue 7, acceptance): upstream publishes a new
// generation every second (packages added and removed, checksum-named
// repodata, old repodata gone) while 50 clients loop repomd.xml → every
// file it lists → one package of its primary.xml, each checked against the
// repomd.xml that client read; 10 of them pause 3s between repomd.xml and
// its files. No client may see a 404 or a checksum mismatch.
//
// It runs DNFPROXY_FLIP_SECONDS seconds (default 20); bench/flip/run.sh
// runs it for 2 minutes.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

// flipSeconds is how long the flip test runs.
func flipSeconds(t testing.TB) int {
	t.Helper()
	v := os.Getenv("DNFPROXY_FLIP_SECONDS")
	if v == "" {
		return 20
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 3 {
		t.Fatalf("DNFPROXY_FLIP_SECONDS=%q: want a number of seconds, at least 3", v)
	}
	return n
}

// flipStats counts what the clients saw.
type flipStats struct {
	sequences, files, packages atomic.Int64
	notFound, mismatch, other  atomic.Int64

	mu        sync.Mutex
	examples  []string
	revisions map[string]bool
}

func (s *flipStats) fail(counter *atomic.Int64, format string, args ...any) {
	counter.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.examples) < 10 {
		s.examples = append(s.examples, fmt.Sprintf(format, args...))
	}
}

func (s *flipStats) sawRevision(r string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revisions[r] = true
}

// flipClient loops until ctx ends: repomd.xml, a pause, every listed file,
// one package of primary.xml.
func flipClient(ctx context.Context, client *http.Client, base string, pause time.Duration, pick int, st *flipStats) {
	get := func(url string) (int, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	check := func(what, url string, sumType, sum string) ([]byte, bool) {
		code, body, err := get(url)
		switch {
		case ctx.Err() != nil:
			return nil, false
		case err != nil:
			st.fail(&st.other, "%s %s: %v", what, url, err)
		case code == http.StatusNotFound:
			st.fail(&st.notFound, "%s %s: 404", what, url)
		case code != http.StatusOK:
			st.fail(&st.other, "%s %s: %d %s", what, url, code, body)
		default:
			if sumType == "" {
				return body, true
			}
			if err := checksumOK(sumType, sum, body); err != nil {
				st.fail(&st.mismatch, "%s %s: %v", what, url, err)
				return nil, false
			}
			return body, true
		}
		return nil, false
	}
	for ctx.Err() == nil {
		body, ok := check("repomd.xml", base+"repodata/repomd.xml", "", "")
		if !ok {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		doc, err := parseRepomd(body)
		if err != nil {
			st.fail(&st.other, "repomd.xml: %v", err)
			continue
		}
		st.sawRevision(doc.Revision)
		if pause > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
		}
		var primary []byte
		complete := true
		for _, d := range doc.Data {
			b, ok := check("file of revision "+doc.Revision, base+d.Location.Href, d.Checksum.Type, d.Checksum.Value)
			if !ok {
				complete = false
				continue
			}
			st.files.Add(1)
			if d.Type == "primary" {
				primary = b
			}
		}
		if primary == nil {
			continue
		}
		pkgs, err := parsePrimary(primary)
		if err != nil || len(pkgs) == 0 {
			st.fail(&st.other, "primary.xml of revision %s: %d packages, %v", doc.Revision, len(pkgs), err)
			continue
		}
		pick++
		pkg := pkgs[pick%len(pkgs)]
		if _, ok := check("package of revision "+doc.Revision, base+pkg.Location.Href, pkg.Checksum.Type, pkg.Checksum.Value); ok {
			st.packages.Add(1)
			if complete {
				st.sequences.Add(1)
			}
		}
	}
}

func TestBB_FlipUnderLoad(t *testing.T) {
	seconds := flipSeconds(t)
	sets := [][]string{
		{testenv.RPMLib, testenv.RPMApp, testenv.RPMTool},
		{testenv.RPMLib, testenv.RPMLibAlma, testenv.RPMApp},
		{testenv.RPMLibAlma, testenv.RPMApp, testenv.RPMTool, testenv.RPMExtra},
		{testenv.RPMLib, testenv.RPMTool, testenv.RPMExtra},
		{testenv.RPMLib, testenv.RPMLibAlma, testenv.RPMExtra},
	}
	// One generation per second, never one twice: revisions only grow.
	gens := buildGenerations(t, seconds+5, sets, "--no-database")
	up := testenv.NewSickUpstream(t, gens[0])
	p := startViewProxy(t, up, config.ModeOff, func(c *config.Config) {
		c.Repos[0].MetadataTTL = config.Duration(time.Second)
	})
	for _, base := range []string{"/test/el9/", "/test@annotate/el9/"} {
		checkListedFiles(t, p, base)
	}
	if t.Failed() {
		t.FailNow()
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Duration(seconds)*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for k := 1; k < len(gens); k++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				up.SetDir(gens[k])
			}
		}
	})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	stats := map[string]*flipStats{}
	const clients, pausing = 50, 10
	for _, view := range []string{"raw", "annotate"} {
		stats[view] = &flipStats{revisions: map[string]bool{}}
	}
	for i := range clients {
		// Half the clients on each view; the first ten (five per view)
		// pause 3s between repomd.xml and its files.
		view := []string{"raw", "annotate"}[i%2]
		var pause time.Duration
		if i < pausing {
			pause = 3 * time.Second
		}
		wg.Go(func() { flipClient(ctx, client, p.URL(viewBase(view)), pause, i, stats[view]) })
	}
	wg.Wait()
	for _, view := range []string{"raw", "annotate"} {
		st := stats[view]
		t.Logf("%s view: %d complete sequences, %d files, %d packages, %d revisions seen; %d 404s, %d checksum mismatches, %d other errors",
			view, st.sequences.Load(), st.files.Load(), st.packages.Load(), len(st.revisions),
			st.notFound.Load(), st.mismatch.Load(), st.other.Load())
		if st.notFound.Load() > 0 || st.mismatch.Load() > 0 || st.other.Load() > 0 {
			t.Errorf("%s view: %d 404s, %d checksum mismatches, %d other errors; first: %q",
				view, st.notFound.Load(), st.mismatch.Load(), st.other.Load(), st.examples)
		}
		if len(st.revisions) < seconds/3 {
			t.Errorf("%s view: clients saw only %d revisions in %ds of flips: the proxy did not follow upstream", view, len(st.revisions), seconds)
		}
	}
}
