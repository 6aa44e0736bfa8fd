package upstream

import (
	"bytes"
	"context"
	"errors"
	"github.com/dnfproxy/dnfproxy/metadata"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

// librepoDir is librepo's tests/ folder in the shared corpora: skipped
// when absent outside CI, a failure under CI.
func librepoDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(filepath.Dir(testenv.TestdataDir()), "..", "shared", "corpora", "librepo", "tests")
	if _, err := os.Stat(dir); err != nil {
		if testenv.InCI() {
			t.Fatalf("corpus missing: %v", err)
		}
		t.Skipf("corpus missing: %v", err)
	}
	return dir
}

func yumMock(t testing.TB) string {
	return filepath.Join(librepoDir(t), "python", "tests", "servermock", "yum_mock", "static")
}

// mockMirrors serves librepo's yum mock on loopback: the repos under
// /yum/static/, and its metalinks and mirrorlists with their URLs turned to
// this server (and their unreachable hosts to a closed loopback port).
// /yum/harm_checksum/primary.xml/static/01/ serves 01 with a repomd.xml
// one byte off, like librepo's mock.
func mockMirrors(t *testing.T) *server {
	t.Helper()
	static := yumMock(t)
	dead := closedAddr(t)
	var srv *server
	srv = newServer(t, func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case strings.HasPrefix(p, "/yum/static/metalink/"), strings.HasPrefix(p, "/yum/static/mirrorlist/"):
			data, err := os.ReadFile(filepath.Join(static, strings.TrimPrefix(p, "/yum/static/")))
			if err != nil {
				http.NotFound(w, r)
				return
			}
			port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
			s := strings.ReplaceAll(string(data), "{PORT_PLACEHOLDER}", port)
			s = strings.ReplaceAll(s, "http://256.0.0.1/", "http://"+dead+"/")
			s = strings.ReplaceAll(s, "127.0.0.1:44444", dead)
			w.Write([]byte(s))
		case strings.HasPrefix(p, "/yum/harm_checksum/primary.xml/static/"):
			rest := strings.TrimPrefix(p, "/yum/harm_checksum/primary.xml/static/")
			data, err := os.ReadFile(filepath.Join(static, filepath.FromSlash(rest)))
			if err != nil {
				http.NotFound(w, r)
				return
			}
			if strings.HasSuffix(rest, "repomd.xml") {
				data = bytes.Replace(data, []byte("<revision>"), []byte("<revision>9"), 1)
			}
			w.Write(data)
		case strings.HasPrefix(p, "/yum/static/"):
			http.StripPrefix("/yum/static/", http.FileServer(http.Dir(static))).ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
	return srv
}

// verifiedRepomd does what a caller does with a metalink repo: fetch
// repomd.xml, check it against the metalink's hashes, and on a mismatch
// move on to the next mirror.
func verifiedRepomd(t *testing.T, c *Client, root string) (base string, body []byte, err error) {
	t.Helper()
	ctx := context.Background()
	hashes, _, err := c.RepomdHashes(ctx, root)
	if err != nil {
		return "", nil, err
	}
	after := ""
	for attempt := 0; attempt < 3; attempt++ {
		var resp *Response
		if after == "" {
			resp, err = c.Get(ctx, root+"repodata/repomd.xml", nil)
		} else {
			resp, err = c.GetFrom(ctx, root+"repodata/repomd.xml", nil, after)
		}
		if err != nil {
			return "", nil, err
		}
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			err = VerifyRepomd(body, hashes)
		}
		if err == nil {
			return resp.Base, body, nil
		}
		c.MarkFailed(resp.Base, err)
		after = resp.Base
	}
	return "", nil, err
}

// librepo's metalinks, served on loopback: the good ones verify, the bad
// checksum does not, a dead first host or URL falls over to the next, an
// alternate's hash is accepted, a mirror serving a wrong repomd.xml is
// passed over, a metalink without URLs is an error.
func TestMetalinkFromLibrepo(t *testing.T) {
	srv := mockMirrors(t)
	repomd, err := os.ReadFile(filepath.Join(yumMock(t), "01", "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	good := srv.URL + "/yum/static/01/"
	harm := srv.URL + "/yum/harm_checksum/primary.xml/static/01/"
	for _, tc := range []struct {
		file       string
		hashes     int    // how many hashes RepomdHashes gives
		wantBase   string // "" when no mirror may be verified
		wantErr    error
		failedBase bool // the first mirror is in Status with a failure
	}{
		{"good_01.xml", 1, good, nil, false},
		{"good_02.xml", 1, good, nil, false},
		{"badchecksum.xml", 1, "", ErrChecksum, false},
		{"badfirsthost.xml", 1, good, nil, true},
		{"badfirsturl.xml", 1, good, nil, true},
		{"metalink_with_alternates.xml", 3, good, nil, false},
		{"firsturlhascorruptedfiles.xml", 1, good, nil, false},
		{"mirrors_01.xml", 0, good, nil, false},
		{"nourls.xml", -1, "", ErrUnavailable, false},
	} {
		t.Run(tc.file, func(t *testing.T) {
			c := newClient(t, Options{Metalink: srv.URL + "/yum/static/metalink/" + tc.file})
			hashes, ok, err := c.RepomdHashes(context.Background(), "")
			if tc.hashes < 0 {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("RepomdHashes: %v, want %v", err, tc.wantErr)
				}
				if _, _, err := fetch(t, c, "repodata/repomd.xml"); !errors.Is(err, tc.wantErr) {
					t.Fatalf("Get: %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || !ok || len(hashes) != tc.hashes {
				t.Fatalf("RepomdHashes: %v ok=%v %v, want %d hashes", err, ok, hashes, tc.hashes)
			}
			base, body, err := verifiedRepomd(t, c, "")
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %v from %s, want %v", err, base, tc.wantErr)
				}
				return
			}
			if err != nil || base != tc.wantBase || !bytes.Equal(body, repomd) {
				t.Fatalf("repomd.xml from %q (%d bytes): %v; want it from %s", base, len(body), err, tc.wantBase)
			}
			// The metalink's mirrors serve the whole root, packages too.
			rpm, err := os.ReadFile(filepath.Join(yumMock(t), "01", "filesystem-2.4.44-1.fc16.i686.rpm"))
			if err != nil {
				t.Fatal(err)
			}
			if _, got, err := fetch(t, c, "filesystem-2.4.44-1.fc16.i686.rpm"); err != nil || !bytes.Equal(got, rpm) {
				t.Errorf("package through the metalink: %d bytes, %v", len(got), err)
			}
			st := c.Status()
			if tc.failedBase {
				var sick *MirrorStatus
				for i := range st {
					if st[i].Failures > 0 {
						sick = &st[i]
					}
				}
				if sick == nil || sick.Source != "metalink" || !sick.CoolingDown || sick.Base == good {
					t.Errorf("status does not show the dead first mirror: %+v", st)
				}
			}
			if tc.file == "firsturlhascorruptedfiles.xml" {
				if len(st) != 2 || st[0].Base != good || st[1].Base != harm {
					t.Errorf("status: %+v", st)
				}
			}
		})
	}

	t.Run("preference order", func(t *testing.T) {
		c := newClient(t, Options{Metalink: srv.URL + "/yum/static/metalink/mirrors_01.xml"})
		if _, _, err := fetch(t, c, "repodata/repomd.xml"); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range c.Status() {
			got = append(got, strings.TrimPrefix(s.Base, srv.URL))
		}
		want := []string{"/yum/static/01/", "/yum/static/03/", "/yum/static/04/"}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("order %v, want %v (preference 100, 50, 10)", got, want)
		}
	})
}

// librepo's mirrorlists, served on loopback.
func TestMirrorlistFromLibrepo(t *testing.T) {
	srv := mockMirrors(t)
	good := srv.URL + "/yum/static/01/"
	for _, tc := range []struct {
		file     string
		wantBase string
		wantErr  error
	}{
		{"good_01", good, nil},
		{"good_02", good, nil},
		{"badfirsturl", good, nil},
		{"nourls", "", ErrUnavailable},
	} {
		t.Run(tc.file, func(t *testing.T) {
			c := newClient(t, Options{Mirrorlist: srv.URL + "/yum/static/mirrorlist/" + tc.file})
			resp, body, err := fetch(t, c, "repodata/repomd.xml")
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || resp.Base != tc.wantBase || len(body) == 0 {
				t.Fatalf("got %v from %v", err, resp)
			}
			if _, ok, err := c.RepomdHashes(context.Background(), ""); ok || err != nil {
				t.Errorf("a mirrorlist has no hashes: ok=%v err=%v", ok, err)
			}
		})
	}
}

// A template with $root gets one list per root; the root of a path is
// found from repodata/, from the roots already known, from Packages/, or
// by trying the parent directories.
func TestMetalinkPerRoot(t *testing.T) {
	data := []byte("iso")
	mirror := newServer(t, files(map[string][]byte{
		"/m1/9/os/repodata/repomd.xml": []byte("<repomd/>"),
		"/m1/9/os/Packages/a.rpm":      data,
		"/m1/9/os/images/boot.iso":     data,
		"/m2/9/os/images/boot.iso":     data,
	}))
	metalink := func(root string) string {
		return `<?xml version="1.0"?><metalink version="3.0" xmlns="http://www.metalinker.org/"><files><file name="repomd.xml">` +
			`<verification><hash type="sha256">` + strings.Repeat("0", 64) + `</hash></verification><resources>` +
			`<url protocol="http" preference="50">` + mirror.URL + "/m2/" + root + `repodata/repomd.xml</url>` +
			`<url protocol="http" preference="100">` + mirror.URL + "/m1/" + root + `repodata/repomd.xml</url>` +
			`</resources></file></files></metalink>`
	}
	var asked []string
	list := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		root := r.URL.Query().Get("root")
		asked = append(asked, root)
		if root != "9/os" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(metalink(root + "/")))
	})
	tmpl := list.URL + "/metalink?root=$root"

	c := newClient(t, Options{Metalink: tmpl})
	for _, rel := range []string{"9/os/repodata/repomd.xml", "9/os/Packages/a.rpm", "9/os/images/boot.iso"} {
		resp, _, err := fetch(t, c, rel)
		if err != nil || resp.Base != mirror.URL+"/m1/9/os/" {
			t.Fatalf("%s: %v from %v", rel, err, resp)
		}
	}
	if strings.Join(asked, ",") != "9/os" {
		t.Errorf("lists asked for %q, want one for 9/os (the sub-path without slashes)", asked)
	}
	if h, ok, err := c.RepomdHashes(context.Background(), "9/os/"); err != nil || !ok || len(h) != 1 || h[0].Type != "sha256" {
		t.Errorf("hashes %v ok=%v %v", h, ok, err)
	}

	// A fresh client, asked first for a path that names no repodata/ or
	// Packages/, finds the root by trying the parents.
	asked = nil
	c = newClient(t, Options{Metalink: tmpl})
	if resp, _, err := fetch(t, c, "9/os/images/boot.iso"); err != nil || resp.Base != mirror.URL+"/m1/9/os/" {
		t.Fatalf("probing: %v from %v", err, resp)
	}
	if strings.Join(asked, ",") != "9/os/images,9/os" {
		t.Errorf("lists asked for %q", asked)
	}
	asked = nil
	if _, _, err := fetch(t, c, "8/x/y.img"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a path under no root: %v, want ErrNotFound", err)
	}
	if n := len(asked); n != 3 {
		t.Errorf("probed %d roots (%q), want 3", n, asked)
	}
}

// A list is refreshed when it is older than its TTL and when every mirror
// it names failed; a failed refresh keeps the last good list in use.
func TestMirrorListRefresh(t *testing.T) {
	data := []byte("f")
	a := newServer(t, files(map[string][]byte{"/a/f": data}))
	b := newServer(t, files(map[string][]byte{"/b/f": data}))
	var current atomic.Value
	var broken atomic.Bool
	list := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() {
			http.Error(w, "down", 500)
			return
		}
		w.Write([]byte(current.Load().(string) + "\n"))
	})
	current.Store(a.base("/a/"))
	c := newClient(t, Options{Mirrorlist: list.URL + "/ml"})
	c.lists.retry = 0
	get := func() string {
		t.Helper()
		resp, _, err := fetch(t, c, "f")
		if err != nil {
			t.Fatal(err)
		}
		return resp.Base
	}
	if got := get(); got != a.base("/a/") {
		t.Fatalf("first list: %s", got)
	}

	t.Run("TTL", func(t *testing.T) {
		current.Store(b.base("/b/"))
		if got := get(); got != a.base("/a/") {
			t.Errorf("refetched before the TTL: %s", got)
		}
		c.lists.ttl = 50 * time.Millisecond
		time.Sleep(60 * time.Millisecond)
		if got := get(); got != b.base("/b/") {
			t.Errorf("not refreshed after the TTL: %s", got)
		}
		c.lists.ttl = time.Hour
	})
	t.Run("failed refresh keeps the list", func(t *testing.T) {
		broken.Store(true)
		c.lists.ttl = time.Nanosecond
		if got := get(); got != b.base("/b/") {
			t.Errorf("after a failed refresh: %s", got)
		}
		c.lists.ttl = time.Hour
		broken.Store(false)
	})
	t.Run("every mirror failed", func(t *testing.T) {
		dead := "http://" + closedAddr(t) + "/"
		current.Store(dead)
		c.lists.ttl = time.Nanosecond
		if _, _, err := fetch(t, c, "f"); !errors.Is(err, ErrUnavailable) { // with the dead list
			t.Fatalf("dead mirror: %v", err)
		}
		c.lists.ttl = time.Hour
		current.Store(a.base("/a/"))
		if got := get(); got != a.base("/a/") {
			t.Errorf("list not refreshed after every mirror failed: %s", got)
		}
	})
}

// RepomdHashes answers from a metalink at most hashTTL old, so a new
// repomd.xml is checked against the metalink of its time.
func TestRepomdHashesFollowTheMetalink(t *testing.T) {
	mirror := newServer(t, status(200))
	var sum atomic.Value
	sum.Store(strings.Repeat("a", 64))
	list := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`<metalink><files><file name="repomd.xml"><verification><hash type="sha256">` + sum.Load().(string) +
			`</hash></verification><resources><url>` + mirror.URL + `/repodata/repomd.xml</url></resources></file></files></metalink>`))
	})
	c := newClient(t, Options{Metalink: list.URL + "/ml"})
	c.lists.hashTTL = 50 * time.Millisecond
	h1, _, err := c.RepomdHashes(context.Background(), "")
	if err != nil || len(h1) != 1 || h1[0].Value != strings.Repeat("a", 64) {
		t.Fatalf("%v %v", h1, err)
	}
	sum.Store(strings.Repeat("b", 64))
	time.Sleep(60 * time.Millisecond)
	h2, _, err := c.RepomdHashes(context.Background(), "")
	if err != nil || len(h2) != 1 || h2[0].Value != strings.Repeat("b", 64) {
		t.Fatalf("after the metalink changed: %v %v", h2, err)
	}
	if _, ok, _ := c.RepomdHashes(context.Background(), "other/root/"); ok {
		t.Errorf("a template without $root gave hashes for another root")
	}
}

// The parsers on librepo's metalink and mirrorlist test files; what a
// file should give is read from it with a regexp, independent of the
// parser.
func TestParseLibrepoTestData(t *testing.T) {
	dir := filepath.Join(librepoDir(t), "test_data")
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	urlRe := regexp.MustCompile(`<url([^>]*)>(https?://[^<]*)</url>`)
	prefRe := regexp.MustCompile(`preference="(\d+)"`)
	// expectedBases lists the http(s) URLs of the repomd.xml file's
	// resources, by preference, as the parser should.
	expectedBases := func(data []byte) []string {
		s := string(data)
		if i := strings.Index(s, `<file name="repomd.xml">`); i >= 0 {
			s = s[i:]
			s = s[:strings.Index(s, "</file>")]
		}
		if !strings.Contains(s, "<resources") {
			return nil
		}
		type pu struct {
			p int
			u string
		}
		var all []pu
		for _, m := range urlRe.FindAllStringSubmatch(s, -1) {
			p := 0
			if pm := prefRe.FindStringSubmatch(m[1]); pm != nil {
				p, _ = strconv.Atoi(pm[1])
			}
			all = append(all, pu{p, strings.TrimSuffix(m[2], "repodata/repomd.xml")})
		}
		sort.SliceStable(all, func(i, j int) bool { return all[i].p > all[j].p })
		var out []string
		for _, x := range all {
			out = append(out, x.u)
		}
		return out
	}
	for _, tc := range []struct {
		file    string
		hashes  []string // type:value prefixes
		wantErr bool
	}{
		{"metalinks/metalink_good_01", []string{"sha512:884dc465"}, false},
		{"metalinks/metalink_good_02", nil, false},
		{"metalinks/metalink_good_03", nil, false},
		{"metalinks/metalink_bad_01", []string{"sha512:884dc465"}, false},
		{"metalinks/metalink_bad_02", []string{"md5:20b6d779"}, false},
		{"metalinks/metalink_with_alternates", []string{"sha512:c076ce63", "sha512:bd9d3401"}, false},
		{"metalinks/metalink_really_bad_01", nil, true},
		{"metalinks/metalink_really_bad_02", nil, true},
		{"metalinks/metalink_really_bad_03", nil, true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data := read(tc.file)
			pl, err := parseMetalink(data)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parsed: %+v", pl)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := expectedBases(data)
			if strings.Join(pl.bases, "\n") != strings.Join(want, "\n") {
				t.Errorf("bases\n%s\nwant\n%s", strings.Join(pl.bases, "\n"), strings.Join(want, "\n"))
			}
			var got []string
			for _, h := range pl.hashes {
				got = append(got, h.Type+":"+h.Value[:min(8, len(h.Value))])
			}
			if strings.Join(got, " ") != strings.Join(tc.hashes, " ") {
				t.Errorf("hashes %v, want %v", got, tc.hashes)
			}
		})
	}
	for _, tc := range []struct {
		file string
		want []string
	}{
		{"mirrorlists/mirrorlist_01", []string{"http://foo.bar/fedora/linux/"}},
		{"mirrorlists/mirrorlist_02", nil},
		{"mirrorlists/mirrorlist_03", nil},
		{"repo_yum_02/mirrorlist", []string{"http://127.0.0.1:5000/yum/static/01/"}},
	} {
		pl, err := parseMirrorlist(read(tc.file))
		if err != nil || strings.Join(pl.bases, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: %v %v, want %v", tc.file, pl.bases, err, tc.want)
		}
	}
}

func TestVerifyRepomd(t *testing.T) {
	body := []byte("<repomd/>\n")
	// sha256 and md5 of body, computed by the standard tools' algorithms.
	h, _ := metadata.NewHash("sha256")
	h.Write(body)
	good := Hash{Type: "sha256", Value: strings.ToUpper(hexString(h.Sum(nil)))}
	bad := Hash{Type: "sha512", Value: strings.Repeat("0", 128)}
	for _, tc := range []struct {
		name   string
		hashes []Hash
		ok     bool
	}{
		{"no hashes", nil, true},
		{"match, upper-case hex", []Hash{good}, true},
		{"alternate matches", []Hash{bad, good}, true},
		{"none matches", []Hash{bad}, false},
	} {
		err := VerifyRepomd(body, tc.hashes)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrChecksum)) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// The list URL may redirect within its own origin, not elsewhere.
func TestListRedirects(t *testing.T) {
	data := []byte("f")
	mirror := newServer(t, files(map[string][]byte{"/m/f": data}))
	elsewhere := newServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(mirror.base("/m/"))) })
	list := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ml":
			http.Redirect(w, r, "/ml/v2", http.StatusFound)
		case "/ml/v2":
			w.Write([]byte(mirror.base("/m/")))
		case "/away":
			http.Redirect(w, r, elsewhere.URL+"/ml", http.StatusFound)
		}
	})
	c := newClient(t, Options{Mirrorlist: list.URL + "/ml"})
	if resp, _, err := fetch(t, c, "f"); err != nil || resp.Base != mirror.base("/m/") {
		t.Fatalf("redirect within the list's origin: %v", err)
	}
	c = newClient(t, Options{Mirrorlist: list.URL + "/away"})
	if _, _, err := fetch(t, c, "f"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("redirect of the list to another origin: %v, want ErrUnavailable", err)
	}
	if n := elsewhere.hits.Load(); n != 0 {
		t.Errorf("the other origin was asked %d times", n)
	}
}

// A mirrorlist= URL that answers with a metalink (EPEL's old
// configuration; dnf sniffs it too) is read as a metalink, hashes included.
func TestMirrorlistThatIsAMetalink(t *testing.T) {
	srv := mockMirrors(t)
	c := newClient(t, Options{Mirrorlist: srv.URL + "/yum/static/metalink/good_01.xml"})
	hashes, ok, err := c.RepomdHashes(context.Background(), "")
	if err != nil || !ok || len(hashes) != 1 {
		t.Fatalf("hashes %v ok=%v %v", hashes, ok, err)
	}
	if base, _, err := verifiedRepomd(t, c, ""); err != nil || base != srv.URL+"/yum/static/01/" {
		t.Fatalf("repomd.xml from %q: %v", base, err)
	}
}
