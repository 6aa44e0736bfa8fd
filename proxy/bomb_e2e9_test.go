package proxy

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata/bombs"
)

// vmHWM returns a process's peak resident set size in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// bomb is a primary.xml.gz crafted to blow up a decoder.
type bomb struct {
	name           string
	prefix, suffix []byte
	fill           byte
	n              int64
}

// installPrimary writes gz as the repo's new primary.xml.gz and points
// repomd.xml at it with its real checksums and sizes (open ones computed
// by streaming the uncompressed form), under a higher revision.
func installPrimary(t *testing.T, repodata string, b bomb) {
	t.Helper()
	var gz bytes.Buffer
	if err := bombs.GzipFill(&gz, b.prefix, b.fill, b.n, b.suffix); err != nil {
		t.Fatal(err)
	}
	// The open checksum of prefix, n fill bytes, suffix, hashed a MiB at
	// a time (bombs.Fill's byte loop is slow under the race detector).
	oh := sha256.New()
	oh.Write(b.prefix)
	chunk := bytes.Repeat([]byte{b.fill}, 1<<20)
	for left := b.n; left > 0; left -= int64(len(chunk)) {
		oh.Write(chunk[:min(left, int64(len(chunk)))])
	}
	oh.Write(b.suffix)
	open := int64(len(b.prefix)) + b.n + int64(len(b.suffix))
	// The crafted file really is gzip of that content (first bytes).
	zr, err := gzip.NewReader(bytes.NewReader(gz.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, len(b.prefix))
	if _, err := io.ReadFull(zr, head); err != nil || !bytes.Equal(head, b.prefix) {
		t.Fatalf("%s: crafted gzip does not start with its prefix: %v", b.name, err)
	}
	sum := sha256.Sum256(gz.Bytes())
	hexSum := hex.EncodeToString(sum[:])
	href := "repodata/" + hexSum + "-primary.xml.gz"
	if err := os.WriteFile(filepath.Join(repodata, "..", href), gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	mdPath := filepath.Join(repodata, "repomd.xml")
	md, err := os.ReadFile(mdPath)
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile(`(?s)<data type="primary">.*?</data>`)
	loc := block.FindIndex(md)
	if loc == nil {
		t.Fatal("repomd.xml has no primary record")
	}
	now := time.Now().Unix()
	rec := fmt.Sprintf(`<data type="primary">
    <checksum type="sha256">%s</checksum>
    <open-checksum type="sha256">%s</open-checksum>
    <location href="%s"/>
    <timestamp>%d</timestamp>
    <size>%d</size>
    <open-size>%d</open-size>
  </data>`, hexSum, hex.EncodeToString(oh.Sum(nil)), href, now, gz.Len(), open)
	md = append(append(append([]byte{}, md[:loc[0]]...), rec...), md[loc[1]:]...)
	rev := regexp.MustCompile(`<revision>\d+</revision>`)
	if !rev.Match(md) {
		t.Fatal("repomd.xml has no revision")
	}
	md = rev.ReplaceAll(md, []byte(fmt.Sprintf("<revision>%d</revision>", now)))
	if err := os.WriteFile(mdPath, md, 0o644); err != nil {
		t.Fatal(err)
	}
	// A change within the same second must not look unchanged upstream.
	future := time.Now().Add(time.Duration(now%7+2) * time.Second)
	os.Chtimes(mdPath, future, future)
	t.Logf("%s: %d bytes of gzip, %d bytes uncompressed", b.name, gz.Len(), open)
}

// TestBombPrimaryKeepsLastGoodGeneration serves, after a good generation,
// new generations whose primary.xml.gz is a decompression bomb: 5 GB of
// zeros (5 MB of gzip) and a valid primary.xml with 4 GiB of white space
// in one text node (4 MB of gzip), and one whose single <package> is
// 600 MiB. The real binary refuses each, keeps serving its last good
// generation throughout, and its peak RSS stays under 256 MiB.
func TestBombPrimaryKeepsLastGoodGeneration(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and hashes 9 GB of bomb content")
	}
	testenv.RequireTool(t, "createrepo_c")
	bin := buildDnfproxy(t)
	dir := t.TempDir()
	testenv.MakeRepo(t, filepath.Join(dir, "el9"), testenv.InitialRPMs())
	up := newFakeUpstream(t, dir)
	c := writeBinConfig(t, up.URL())
	// The repo in annotate mode, so the good generation is analysed and
	// rewritten too.
	cfgText, err := os.ReadFile(c.path)
	if err != nil {
		t.Fatal(err)
	}
	cfgText = append(cfgText, "    compat:\n      mode: annotate\n"...)
	cfgText = bytes.Replace(cfgText, []byte("admin:\n"), []byte("admin:\n  token: \"bomb-test-token\"\n"), 1)
	if err := os.WriteFile(c.path, cfgText, 0o644); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, bin, c)
	base := "http://" + c.listen + "/test/el9/"
	pkg := base + "Packages/" + testenv.InitialRPMs()[0]
	client := &http.Client{Timeout: 20 * time.Second}
	get := func(url string) (int, []byte, error) {
		resp, err := client.Get(url)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, body, err
	}
	st, good, err := get(base + "repodata/repomd.xml")
	if err != nil || st != http.StatusOK {
		t.Fatalf("repomd.xml: %d %v", st, err)
	}
	if st, _, err := get(pkg); err != nil || st != http.StatusOK {
		t.Fatalf("package: %d %v", st, err)
	}
	rawGood, err := os.ReadFile(filepath.Join(dir, "el9", "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}

	// Clients keep asking throughout.
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		served   atomic.Int64
		mu       sync.Mutex
		failures []string
	)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				for _, u := range []string{base + "repodata/repomd.xml", pkg, "http://" + c.admin + "/readyz"} {
					st, body, err := get(u)
					if err == nil && st == http.StatusOK && u == base+"repodata/repomd.xml" && !bytes.Equal(body, good) {
						err = fmt.Errorf("repomd.xml changed")
					}
					if err != nil || st != http.StatusOK {
						mu.Lock()
						failures = append(failures, fmt.Sprintf("%s: %d %v", u, st, err))
						mu.Unlock()
					}
					served.Add(1)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	repodata := filepath.Join(dir, "el9", "repodata")
	ws, wsTail := bombs.WhitespacePrimary()
	huge, hugeTail := bombs.HugePackagePrimary()
	for _, b := range []bomb{
		{name: "zeros", n: 5 << 30},
		{name: "whitespace", prefix: ws, suffix: wsTail, fill: ' ', n: 4 << 30},
		{name: "huge package", prefix: huge, suffix: hugeTail, fill: 'x', n: 600 << 20},
	} {
		installPrimary(t, repodata, b)
		req, _ := http.NewRequest(http.MethodPost, "http://"+c.admin+"/api/v1/repos/test/refresh?path=el9/", nil)
		req.Header.Set("Authorization", "Bearer bomb-test-token")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: refresh: %v", b.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || !bytes.Contains(body, []byte(`"failed"`)) {
			t.Errorf("%s: refresh answered %d %s, want a failure", b.name, resp.StatusCode, body)
		}
		t.Logf("%s: refresh %d %s", b.name, resp.StatusCode, body)
		if st, body, err := get(base + "repodata/repomd.xml"); err != nil || st != http.StatusOK || !bytes.Equal(body, good) {
			t.Errorf("%s: repomd.xml after the refresh: %d %v (same as the good one: %v)", b.name, st, err, bytes.Equal(body, good))
		}
		if hwm := vmHWM(t, p.cmd.Process.Pid); hwm > 256<<20 {
			t.Errorf("%s: VmHWM %d MiB, want under 256 MiB", b.name, hwm>>20)
		} else {
			t.Logf("%s: VmHWM %d MiB", b.name, hwm>>20)
		}
	}
	stop.Store(true)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d of %d client requests failed during the bombs, first: %s", len(failures), served.Load(), failures[0])
	}
	if served.Load() == 0 {
		t.Error("no client request completed")
	}
	// The good generation is still what the proxy serves after all.
	if !bytes.Contains(good, []byte("primary")) || len(rawGood) == 0 {
		t.Fatal("test setup: no good repomd.xml")
	}
}
