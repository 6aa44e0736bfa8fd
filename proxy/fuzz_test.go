package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/cache/cachetest"
)

// FuzzParseTarget checks that no accepted request path can name anything
// outside the repo's upstream base.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{
		"/almalinux/9/BaseOS/x86_64/os/repodata/repomd.xml",
		"/a@raw/x/", "/a/../b", "/a/%2e%2e/b", "/a/..%2fb", "/a//b", "/a/./b",
		"/a/b%5c..%5cc", "/a/%00", "/a@/b", "/@x/y", "/a/b/..", "/a/b/.", "/a/%252e%252e/",
	} {
		f.Add(s)
	}
	const base = "http://upstream.invalid/pub/repo/"
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.ParseRequestURI(s)
		if err != nil {
			return
		}
		tg, err := parseTarget(u.EscapedPath(), u.Path)
		if err != nil {
			return
		}
		if tg.repo == "" || strings.ContainsAny(tg.repo, "/") {
			t.Fatalf("%q: bad repo %q", s, tg.repo)
		}
		if tg.rel == "" {
			return
		}
		if strings.HasPrefix(tg.rel, "/") || strings.Contains(tg.rel, "\\") || strings.Contains(tg.rel, "//") {
			t.Fatalf("%q: unsafe rel %q", s, tg.rel)
		}
		if c := path.Clean("/" + tg.rel); c != "/"+strings.TrimSuffix(tg.rel, "/") {
			t.Fatalf("%q: rel %q is not clean (%q)", s, tg.rel, c)
		}
		for _, seg := range strings.Split(strings.TrimSuffix(tg.rel, "/"), "/") {
			if seg == "." || seg == ".." || seg == "" {
				t.Fatalf("%q: rel %q has segment %q", s, tg.rel, seg)
			}
		}
		target, err := urlFor(base, tg.rel)
		if err != nil {
			return
		}
		tu, err := url.Parse(target)
		if err != nil {
			t.Fatalf("%q: upstream URL %q does not parse", s, target)
		}
		if tu.Host != "upstream.invalid" || !strings.HasPrefix(tu.Path, "/pub/repo/") {
			t.Fatalf("%q: escapes the base: %q", s, target)
		}
		if strings.Contains(tu.Path, "/../") || strings.HasSuffix(tu.Path, "/..") {
			t.Fatalf("%q: upstream path %q has ..", s, tu.Path)
		}
	})
}

// FuzzRange serves a cached object (chunked store, several chunks) with
// arbitrary Range headers and checks every answer's bytes.
func FuzzRange(f *testing.F) {
	for _, r := range []string{
		"bytes=0-0", "bytes=-1", "bytes=100-", "bytes=0-99,200-299", "bytes=5-1",
		"bytes=65535-65537", "bytes=0-,0-", "bytes=999999-", "bytes=1-2,3-4,5-6", "items=0-1", "",
	} {
		f.Add(r)
	}
	data := cachetest.Bytes(7, 3*cachetest.ChunkSize+123)
	store := cache.NewMemory()
	w, err := store.Create(context.Background(), "k", cache.Meta{ContentType: "application/x-rpm"})
	if err != nil {
		f.Fatal(err)
	}
	w.Write(data)
	if err := w.Commit(context.Background()); err != nil {
		f.Fatal(err)
	}
	s := &Server{store: store}
	r := gin.New()
	r.GET("/x", func(c *gin.Context) {
		obj, err := store.Get(c.Request.Context(), "k")
		if err != nil {
			c.AbortWithStatus(500)
			return
		}
		s.serveObject(c, obj, "x.rpm", immutable, 0)
	})
	f.Fuzz(func(t *testing.T, rng string) {
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		body := rec.Body.Bytes()
		switch rec.Code {
		case http.StatusOK:
			if !bytes.Equal(body, data) {
				t.Fatalf("%q: 200 with wrong body", rng)
			}
		case http.StatusRequestedRangeNotSatisfiable:
		case http.StatusPartialContent:
			checkPartial(t, rng, rec.Result().Header, body, data)
		default:
			t.Fatalf("%q: status %d", rng, rec.Code)
		}
		if rec.Header().Get("Content-Encoding") != "" {
			t.Fatalf("%q: Content-Encoding set", rng)
		}
	})
}

func checkPartial(t *testing.T, rng string, h http.Header, body, data []byte) {
	t.Helper()
	mt, params, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if mt != "multipart/byteranges" {
		checkPart(t, rng, h.Get("Content-Range"), body, data)
		return
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("%q: multipart: %v", rng, err)
		}
		got, _ := io.ReadAll(p)
		checkPart(t, rng, p.Header.Get("Content-Range"), got, data)
	}
}

func checkPart(t *testing.T, rng, cr string, got, data []byte) {
	t.Helper()
	var start, end, size int
	if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &start, &end, &size); err != nil {
		t.Fatalf("%q: Content-Range %q: %v", rng, cr, err)
	}
	if size != len(data) || start < 0 || end >= len(data) || start > end {
		t.Fatalf("%q: Content-Range %q out of bounds", rng, cr)
	}
	if !bytes.Equal(got, data[start:end+1]) {
		t.Fatalf("%q: part %q has wrong bytes", rng, cr)
	}
}

// urlFor joins a base and a cleaned path the way internal/upstream does
// (url.ResolveReference with the path as a relative reference).
func urlFor(base, rel string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	return u.ResolveReference(&url.URL{Path: rel}).String(), nil
}
