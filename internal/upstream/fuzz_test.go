package upstream

import (
	"github.com/dnfproxy/dnfproxy/metadata"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

// addListSeeds adds librepo's metalinks and mirrorlists when the corpus is
// there, and a few shapes of its own.
func addListSeeds(f *testing.F, inline ...string) {
	for _, s := range inline {
		f.Add([]byte(s))
	}
	dir := filepath.Join(filepath.Dir(testenv.TestdataDir()), "..", "shared", "corpora", "librepo", "tests")
	for _, pat := range []string{"test_data/metalinks/*", "test_data/mirrorlists/*", "python/tests/servermock/yum_mock/static/metalink/*", "python/tests/servermock/yum_mock/static/mirrorlist/*"} {
		paths, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, p := range paths {
			if data, err := os.ReadFile(p); err == nil {
				f.Add(data)
			}
		}
	}
}

// checkParsed holds for whatever a parser returns: every base is an
// http(s) URL with a host, ending in "/", listed once; every hash has a
// known type and a value.
func checkParsed(t *testing.T, pl parsedList) {
	seen := map[string]bool{}
	for _, b := range pl.bases {
		u, err := url.Parse(b)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !strings.HasSuffix(b, "/") {
			t.Fatalf("bad base %q", b)
		}
		if seen[b] {
			t.Fatalf("base %q listed twice", b)
		}
		seen[b] = true
		if _, err := joinURL(b, "repodata/repomd.xml"); err != nil {
			t.Fatalf("base %q does not join: %v", b, err)
		}
	}
	for _, h := range pl.hashes {
		if hashRank[h.Type] == 0 || h.Value == "" || !knownHash(h.Type) {
			t.Fatalf("bad hash %+v", h)
		}
	}
}

func FuzzParseMetalink(f *testing.F) {
	addListSeeds(f,
		`<metalink><files><file name="repomd.xml"><resources><url preference="x">http://a/b/repodata/repomd.xml</url></resources></file></files></metalink>`,
		`<metalink><files><file name="repomd.xml"><verification><hash type="SHA256"> AB </hash></verification><alternates><alternate><verification><hash type="md5">x</hash></verification></alternate></alternates></file></files></metalink>`,
		`<metalink><files><file name="repomd.xml"><resources><url>https://h:1/?q</url><url>http://[::1]:8/</url></resources></file></files>`,
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		pl, err := parseMetalink(data)
		if err != nil {
			if len(pl.bases)+len(pl.hashes) != 0 {
				t.Fatalf("an error with results: %+v", pl)
			}
			return
		}
		if !pl.metalink {
			t.Fatal("a metalink not marked as one")
		}
		checkParsed(t, pl)
	})
}

func FuzzParseMirrorlist(f *testing.F) {
	addListSeeds(f,
		"# c\n  http://a/b  \nftp://x/\n\nhttps://u:p@h:8443/p\r\nhttp://a/b/\n",
		"\xef\xbb\xbf<?xml version=\"1.0\"?><metalink/>",
		"http://\nhttp:// a/\nhttp://a/ b\n",
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		pl, err := parseMirrorlist(data)
		if err != nil {
			return
		}
		checkParsed(t, pl)
	})
}

func knownHash(typ string) bool {
	_, err := metadata.NewHash(typ)
	return err == nil
}
