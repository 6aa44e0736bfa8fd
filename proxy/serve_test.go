package proxy

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

func TestRangeAndHead(t *testing.T) {
	dir := newRepoDir(t, "el9", []string{testenv.RPMBig})
	up := newFakeUpstream(t, dir)
	p := startProxy(t, testRepoArgs{{"test", up.URL()}}.repos(), nil)
	fetchRepomd(t, p, "test")
	want := readFile(t, dir+"/"+bigPath)
	u := p.URL("/test/" + bigPath)

	for _, cached := range []bool{false, true} {
		t.Run(fmt.Sprintf("cached=%v", cached), func(t *testing.T) {
			if cached {
				if status, _, err := p.get(t, "/test/"+bigPath); err != nil || status != 200 {
					t.Fatalf("warm: %d %v", status, err)
				}
			}
			// HEAD: exact length, no body, no Content-Encoding.
			resp, err := http.Head(u)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Length") != strconv.Itoa(len(want)) {
				t.Fatalf("HEAD: %d, Content-Length %q, want %d", resp.StatusCode, resp.Header.Get("Content-Length"), len(want))
			}
			if ce := resp.Header.Get("Content-Encoding"); ce != "" {
				t.Fatalf("Content-Encoding %q added", ce)
			}

			// Single range.
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			req.Header.Set("Range", "bytes=1000-1999")
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, want[1000:2000]) {
				t.Fatalf("single range: %d, %d bytes", resp.StatusCode, len(body))
			}
			if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes 1000-1999/%d", len(want)) {
				t.Fatalf("Content-Range %q", cr)
			}

			// Multi-range across the 1 MiB chunk boundary and the end.
			ranges := [][2]int{{0, 99}, {1<<20 - 10, 1<<20 + 10}, {len(want) - 50, len(want) - 1}}
			var spec []string
			for _, r := range ranges {
				spec = append(spec, fmt.Sprintf("%d-%d", r[0], r[1]))
			}
			req, _ = http.NewRequest(http.MethodGet, u, nil)
			req.Header.Set("Range", "bytes="+strings.Join(spec, ","))
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
			if resp.StatusCode != http.StatusPartialContent || mt != "multipart/byteranges" {
				t.Fatalf("multi-range: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			mr := multipart.NewReader(resp.Body, params["boundary"])
			for i, r := range ranges {
				part, err := mr.NextPart()
				if err != nil {
					t.Fatalf("part %d: %v", i, err)
				}
				got, _ := io.ReadAll(part)
				if !bytes.Equal(got, want[r[0]:r[1]+1]) {
					t.Fatalf("part %d: wrong bytes", i)
				}
				if cr := part.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes %d-%d/%d", r[0], r[1], len(want)) {
					t.Fatalf("part %d Content-Range %q", i, cr)
				}
			}
			if _, err := mr.NextPart(); err != io.EOF {
				t.Fatalf("extra part: %v", err)
			}

			// Unsatisfiable.
			req, _ = http.NewRequest(http.MethodGet, u, nil)
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", len(want)+10))
			resp2, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp2.Body.Close()
			if resp2.StatusCode != http.StatusRequestedRangeNotSatisfiable {
				t.Fatalf("unsatisfiable range: %d", resp2.StatusCode)
			}
		})
	}
	if n := up.Hits("/" + bigPath); n != 1 {
		t.Errorf("upstream hits %d, want 1", n)
	}
}

func TestCacheHeaders(t *testing.T) {
	dir := newRepoDir(t, "el9", testenv.InitialRPMs())
	up := newFakeUpstream(t, dir)
	p := startProxy(t, testRepoArgs{{"test", up.URL()}}.repos(), nil)
	resp, err := http.Get(p.URL("/test/el9/repodata/repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("repomd.xml Cache-Control %q, want no-cache", cc)
	}
	for _, path := range []string{"/test/el9/Packages/" + testenv.RPMApp} {
		for range 2 { // miss, then hit
			resp, err := http.Get(p.URL(path))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
				t.Errorf("%s Cache-Control %q, want immutable", path, cc)
			}
		}
	}
}

func TestPathEscapesNeverReachOutsideRepo(t *testing.T) {
	// Upstream root holds the repo under pub/ and a secret beside it.
	dir := t.TempDir()
	testenv.MakeRepo(t, filepath.Join(dir, "pub", "el9"), testenv.InitialRPMs())
	const secret = "TOP-SECRET-CONTENT"
	if err := os.WriteFile(filepath.Join(dir, "secret.txt"), []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	up := newFakeUpstream(t, dir)
	p := startProxy(t, testRepoArgs{{"test", up.URL() + "pub/"}}.repos(), nil)
	addr := strings.TrimPrefix(p.http.URL, "http://")

	attacks := []string{
		"/test/../secret.txt",
		"/test/el9/../../secret.txt",
		"/test/%2e%2e/secret.txt",
		"/test/%2E%2E/secret.txt",
		"/test/.%2e/secret.txt",
		"/test/%2e./secret.txt",
		"/test/..%2fsecret.txt",
		"/test/..%2Fsecret.txt",
		"/test/%2e%2e%2fsecret.txt",
		"/test/el9/..%5c..%5csecret.txt",
		"/test/..\\secret.txt",
		"/test//secret.txt",
		"/test/el9//../../secret.txt",
		"/test/./../secret.txt",
		"/test%2f..%2fsecret.txt",
		"/test/%252e%252e/secret.txt",
		"/test/el9/%00/../../secret.txt",
		"/test@raw/../secret.txt",
		"/../secret.txt",
		"/secret.txt",
	}
	for _, path := range attacks {
		out := rawRequest(t, addr, "GET "+path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		status := strings.SplitN(out, " ", 3)
		if strings.Contains(out, secret) {
			t.Errorf("%s: the secret leaked", path)
		}
		if len(status) < 2 || status[1] == "200" {
			t.Errorf("%s: answered %q", path, strings.SplitN(out, "\r\n", 2)[0])
		}
	}
	if n := up.Hits("/secret.txt"); n != 0 {
		t.Fatalf("upstream was asked for /secret.txt %d times", n)
	}
	// The repo itself still works.
	if status, _, err := p.get(t, "/test/el9/repodata/repomd.xml"); err != nil || status != 200 {
		t.Fatalf("repomd: %d %v", status, err)
	}
}

func TestNotAnOpenProxy(t *testing.T) {
	dir := newRepoDir(t, "el9", testenv.InitialRPMs())
	up := newFakeUpstream(t, dir)
	p := startProxy(t, testRepoArgs{{"test", up.URL()}}.repos(), nil)
	addr := strings.TrimPrefix(p.http.URL, "http://")
	upHost := strings.TrimPrefix(up.srv.URL, "http://")
	for _, tc := range []struct {
		req    string
		status string
	}{
		{"GET " + up.srv.URL + "/el9/repodata/repomd.xml HTTP/1.1\r\nHost: " + upHost + "\r\n", "400"},
		{"GET http://example.invalid/test/el9/repodata/repomd.xml HTTP/1.1\r\nHost: example.invalid\r\n", "400"},
		{"CONNECT " + upHost + " HTTP/1.1\r\nHost: " + upHost + "\r\n", "405"},
		{"POST /test/el9/repodata/repomd.xml HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n", "405"},
		{"GET /nosuchrepo/el9/repodata/repomd.xml HTTP/1.1\r\nHost: x\r\n", "404"},
		{"GET /test@nosuchview/el9/repodata/repomd.xml HTTP/1.1\r\nHost: x\r\n", "404"},
		{"GET /test/" + strings.Repeat("a", 5000) + " HTTP/1.1\r\nHost: x\r\n", "414"},
		{"GET /test/el9/repodata/repomd.xml HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 30000) + "\r\n", "431"},
	} {
		out := rawRequest(t, addr, tc.req+"Connection: close\r\n\r\n")
		line := strings.SplitN(out, "\r\n", 2)[0]
		if f := strings.Fields(line); len(f) < 2 || f[1] != tc.status {
			t.Errorf("%.60s: got %q, want %s", tc.req, line, tc.status)
		}
	}
	if n := up.TotalHits(); n != 0 {
		t.Fatalf("refused requests reached upstream %d times", n)
	}
}

func TestRawViewServesUpstreamBytes(t *testing.T) {
	dir := newRepoDir(t, "el9", testenv.InitialRPMs())
	up := newFakeUpstream(t, dir)
	p := startProxy(t, testRepoArgs{{"test", up.URL()}}.repos(), nil)
	_, body, err := p.get(t, "/test@raw/el9/repodata/repomd.xml")
	if err != nil || !bytes.Equal(body, readFile(t, dir+"/el9/repodata/repomd.xml")) {
		t.Fatalf("raw repomd differs from upstream (err %v)", err)
	}
}
