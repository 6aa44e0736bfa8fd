package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// CorporaDir returns the absolute path of the public test corpora, the
// directory ../shared/corpora next to the repository (its README says what
// each folder holds). The test is skipped when the directory is absent, or
// failed when InCI: CI always has it. Corpus files are inputs: read them in
// place or copy them into t.TempDir(), never write to them.
func CorporaDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(filepath.Dir(TestdataDir()), "..", "shared", "corpora")
	dir, err := filepath.Abs(dir)
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "README.md"))
	}
	if err != nil {
		if InCI() {
			t.Fatalf("testenv: the corpora are missing (%v); CI provides ../shared/corpora", err)
		}
		t.Skipf("testenv: no corpora at ../shared/corpora (%v); skipping", err)
	}
	return dir
}

// CorpusPath returns the absolute path of rel (slash-separated, below the
// corpora directory), skipping the test (failing it InCI) when it is absent.
func CorpusPath(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(CorporaDir(t), filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		if InCI() {
			t.Fatalf("testenv: corpus file missing: %v", err)
		}
		t.Skipf("testenv: corpus file missing: %v; skipping", err)
	}
	return p
}
