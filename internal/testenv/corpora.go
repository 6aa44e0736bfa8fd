package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// RequirePython returns the path of a python3 interpreter that can import
// every module given (the Debian python3-* packages live in the system
// interpreter, /usr/bin/python3, not in a pyenv on PATH). The test is
// skipped, or failed when InCI, when there is none.
func RequirePython(t testing.TB, modules ...string) string {
	t.Helper()
	var tried []string
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		path, err := exec.LookPath(py)
		if err != nil {
			continue
		}
		args := []string{"-c", "import " + strings.Join(append([]string{"sys"}, modules...), ", ")}
		if out, err := exec.CommandContext(t.Context(), path, args...).CombinedOutput(); err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v: %s", path, err, bytes.TrimSpace(out)))
			continue
		}
		return path
	}
	msg := fmt.Sprintf("no python3 imports %s (Debian packages %s)", strings.Join(modules, ", "), pythonPackages(modules))
	if len(tried) > 0 {
		msg += "; tried " + strings.Join(tried, "; ")
	}
	if InCI() {
		t.Fatalf("%s; `make deps` installs them", msg)
	}
	t.Skipf("%s; skipping", msg)
	return ""
}

func pythonPackages(modules []string) string {
	var out []string
	for _, m := range modules {
		out = append(out, "python3-"+m)
	}
	return strings.Join(out, ", ")
}
