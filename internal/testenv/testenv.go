// Package testenv holds the helpers that dnfproxy's tests share: locating
// testdata/, requiring external tools, building rpm-md repositories with
// createrepo_c, and driving the real dnf binary against a hermetic
// configuration and install root.
//
// It is an ordinary package so that any _test.go file can import it, but
// nothing outside tests should. Every helper that can fail takes a
// testing.TB and fails the test itself, except the ones documented to return
// an error so that tests can assert on failures.
//
// External tools (dnf, rpm, createrepo_c, rpmbuild, zck) are looked up with
// RequireTool: a test that needs a missing tool is skipped on a developer
// machine and fails when the CI environment variable is "true", so that CI
// never passes by skipping. `make deps` (a prerequisite of `make test`)
// installs them on Debian.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// SourceDateEpoch is the fixed time (2024-01-01T00:00:00Z) used as the build
// time of the fixture RPMs and as the mtime of RPMs copied into test repos, so
// that the generated primary.xml does not depend on when a test runs.
const SourceDateEpoch = 1704067200

// Fixture RPM file names in testdata/rpms (see testdata/README.md).
const (
	RPMLib      = "dnfpt-lib-1.0-1.el9.noarch.rpm"
	RPMApp      = "dnfpt-app-1.0-1.el9.noarch.rpm" // Requires: dnfpt-lib
	RPMTool     = "dnfpt-tool-2.0-1.el9.noarch.rpm"
	RPMExtra    = "dnfpt-extra-1.0-1.el9.noarch.rpm" // not in the initial repo
	RPMBig      = "dnfpt-big-1.0-1.el9.noarch.rpm"   // ~4 MiB, incompressible
	RPMLibAlma  = "dnfpt-lib-1.0-1.el9.alma.1.noarch.rpm"
	RPMConflict = "dnfpt-conflict-1.0-1.noarch.rpm" // Conflicts: abi-divergence(rhel)
)

// InitialRPMs returns the file names of the packages of the "initial" test
// repository: dnfpt-lib, dnfpt-app and dnfpt-tool.
func InitialRPMs() []string {
	return []string{RPMLib, RPMApp, RPMTool}
}

// InitialNEVRAs returns the name-version-release.arch of InitialRPMs, sorted,
// in the format RepoQuery returns.
func InitialNEVRAs() []string {
	return []string{
		"dnfpt-app-1.0-1.el9.noarch",
		"dnfpt-lib-1.0-1.el9.noarch",
		"dnfpt-tool-2.0-1.el9.noarch",
	}
}

var (
	testdataOnce sync.Once
	testdataDir  string
	testdataErr  error
)

// TestdataDir returns the absolute path of the repository's testdata/
// directory. It walks up from the working directory (the package directory
// under `go test`) to the directory holding go.mod. It panics when there is
// none: a test run outside the module cannot use the fixtures at all.
func TestdataDir() string {
	testdataOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			testdataErr = err
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				testdataDir = filepath.Join(dir, "testdata")
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				testdataErr = fmt.Errorf("no go.mod above the working directory")
				return
			}
			dir = parent
		}
	})
	if testdataErr != nil {
		panic("testenv: cannot find testdata/: " + testdataErr.Error())
	}
	return testdataDir
}

// RPMPath returns the absolute path of a fixture RPM. A relative name is taken
// relative to testdata/rpms; an absolute path is returned unchanged.
func RPMPath(name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(TestdataDir(), "rpms", name)
}

// debianPackage names the Debian package that provides each tool we use.
var debianPackage = map[string]string{
	"dnf":          "dnf",
	"rpm":          "rpm",
	"rpmbuild":     "rpm",
	"createrepo_c": "createrepo-c",
	"modifyrepo_c": "createrepo-c",
	"zypper":       "zypper",
	"zck":          "zchunk",
	"chromium":     "chromium",
}

// InCI reports whether the environment variable CI is "true", as CI systems
// set it. In CI a missing prerequisite fails a test instead of skipping it.
func InCI() bool {
	return os.Getenv("CI") == "true"
}

// RequireTool returns the path of the executable name. When it is not on PATH
// the test is skipped, or failed when InCI.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not found on PATH", name)
	if pkg, ok := debianPackage[name]; ok {
		msg += fmt.Sprintf(" (Debian package %q)", pkg)
	}
	if InCI() {
		t.Fatalf("%s; `make test` installs it (via `make deps`, as root)", msg)
	}
	t.Skipf("%s; skipping (`make test` installs it)", msg)
	return ""
}

// RequireRoot skips the test, or fails it when InCI, unless it runs as root.
// dnf refuses to install packages, even into an --installroot, as another user.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if InCI() {
		t.Fatalf("this test installs packages with dnf and must run as root")
	}
	t.Skip("dnf install needs root; skipping")
}
