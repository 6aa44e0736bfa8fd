package testenv

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// createrepoTimeout bounds one createrepo_c run; the fixtures are tiny.
const createrepoTimeout = 2 * time.Minute

// MakeRepo builds an rpm-md repository in dir: it copies rpms (see RPMPath)
// into dir/Packages/ and runs `createrepo_c [args] dir`. args are passed as
// given, so tests choose the flavour: "--general-compress-type=xz", "--zck",
// "--no-database", "--revision=N", ...
func MakeRepo(t testing.TB, dir string, rpms []string, args ...string) {
	t.Helper()
	AddRPMs(t, dir, rpms...)
	CreateRepo(t, dir, args...)
}

// UpdateRepo copies addRPMs into dir/Packages/ and runs
// `createrepo_c --update dir`, modelling a package published upstream. The
// update does not remember the flags of the first run; use AddRPMs and
// CreateRepo(t, dir, "--update", ...) to keep e.g. a compression type.
func UpdateRepo(t testing.TB, dir string, addRPMs ...string) {
	t.Helper()
	AddRPMs(t, dir, addRPMs...)
	CreateRepo(t, dir, "--update")
}

// AddRPMs copies rpms (see RPMPath) into dir/Packages/, creating it, and sets
// their modification time to SourceDateEpoch so that the <time file=...> of
// primary.xml is the same on every run.
func AddRPMs(t testing.TB, dir string, rpms ...string) {
	t.Helper()
	pkgs := filepath.Join(dir, "Packages")
	if err := os.MkdirAll(pkgs, 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	mtime := time.Unix(SourceDateEpoch, 0)
	for _, rpm := range rpms {
		src := RPMPath(rpm)
		dst := filepath.Join(pkgs, filepath.Base(src))
		if err := copyFile(dst, src); err != nil {
			t.Fatalf("testenv: copy fixture RPM: %v (run testdata/rpms/build.sh?)", err)
		}
		if err := os.Chtimes(dst, mtime, mtime); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
}

// CreateRepo runs `createrepo_c [args] dir` and fails the test when it fails.
func CreateRepo(t testing.TB, dir string, args ...string) {
	t.Helper()
	bin := RequireTool(t, "createrepo_c")
	ctx, cancel := context.WithTimeout(t.Context(), createrepoTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(append([]string{"--quiet"}, args...), dir)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: %s: %v\n%s", cmd, err, out)
	}
}

func copyFile(dst, src string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	_, err = io.Copy(out, in)
	return err
}
