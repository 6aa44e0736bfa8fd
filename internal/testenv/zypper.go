package testenv

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Zypper runs the real zypper (openSUSE's client, libzypp over libsolv)
// against its own --root in a temporary directory: its repos, caches,
// rpm database and lock file all live there, and the host's /etc/zypp is
// never read. Repos are added without GPG checks (zypper's own -G).
//
// Debian's zypper installs next to dnf without touching it; only
// dnf-plugins-core declares Breaks: zypper, and the tests use dnf alone.
type Zypper struct {
	t       testing.TB
	bin     string
	root    string
	timeout time.Duration
}

// ZypperError is a zypper command that exited non-zero: its exit code (104:
// a package not found, 106: a repo could not be refreshed, ...) and its
// output, for assertions on what a zypper user sees.
type ZypperError struct {
	Args   []string
	Code   int
	Stdout string
	Stderr string
}

func (e *ZypperError) Error() string {
	return fmt.Sprintf("zypper %s: exit %d: %s", strings.Join(e.Args, " "), e.Code, strings.TrimSpace(e.Stderr+"\n"+e.Stdout))
}

// ZypperOption changes how NewZypper adds a repo.
type ZypperOption func(keys map[string]string)

// WithZypperRepoGPG checks repo alias's repomd.xml signature (.asc) with
// the armored key at keyURL, as repo_gpgcheck=1 with gpgkey= does in dnf;
// packages stay unchecked. zypper imports the key on the first refresh.
func WithZypperRepoGPG(alias, keyURL string) ZypperOption {
	return func(keys map[string]string) { keys[alias] = keyURL }
}

// NewZypper makes a zypper root with repos (alias → base URL) added and
// autorefresh on, without GPG checks unless an option asks for one.
// Commands time out after DefaultDNFTimeout.
func NewZypper(t testing.TB, repos map[string]string, opts ...ZypperOption) *Zypper {
	t.Helper()
	z := &Zypper{t: t, bin: RequireTool(t, "zypper"), root: t.TempDir(), timeout: DefaultDNFTimeout}
	keys := map[string]string{}
	for _, o := range opts {
		o(keys)
	}
	for _, alias := range slices.Sorted(maps.Keys(repos)) {
		key, gpg := keys[alias]
		args := []string{"addrepo", "--refresh", "--no-gpgcheck", repos[alias], alias}
		if gpg {
			args = []string{"addrepo", "--refresh", repos[alias], alias}
		}
		if _, _, err := z.Run(args...); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		if !gpg {
			continue
		}
		file := filepath.Join(z.root, "etc", "zypp", "repos.d", alias+".repo")
		f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
		if err == nil {
			_, err = fmt.Fprintf(f, "repo_gpgcheck=1\npkg_gpgcheck=0\ngpgkey=%s\n", key)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			t.Fatalf("testenv: zypper repo file: %v", err)
		}
	}
	return z
}

// Root returns the --root directory.
func (z *Zypper) Root() string { return z.root }

// Run runs `zypper --root ROOT --non-interactive --no-color
// --gpg-auto-import-keys args...`. A non-zero exit is a *ZypperError.
func (z *Zypper) Run(args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(z.t.Context(), z.timeout)
	defer cancel()
	all := append([]string{"--root", z.root, "--non-interactive", "--no-color", "--gpg-auto-import-keys"}, args...)
	cmd := exec.CommandContext(ctx, z.bin, all...)
	cmd.Env = append(dnfEnv(), "HOME="+z.root)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	start := time.Now()
	err = cmd.Run()
	z.t.Logf("zypper %s: %.2fs", strings.Join(args, " "), time.Since(start).Seconds())
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return so.String(), se.String(), &ZypperError{Args: args, Code: ee.ExitCode(), Stdout: so.String(), Stderr: se.String()}
	}
	if ctx.Err() != nil {
		return so.String(), se.String(), fmt.Errorf("zypper %s: %w", strings.Join(args, " "), ctx.Err())
	}
	return so.String(), se.String(), err
}

// Refresh runs `zypper refresh --force`: every repo's metadata is fetched
// again.
func (z *Zypper) Refresh() error {
	_, _, err := z.Run("refresh", "--force")
	return err
}

// ZypperPackage is one line of `zypper search`.
type ZypperPackage struct {
	Name    string `xml:"name,attr"`
	Edition string `xml:"edition,attr"` // [epoch:]version-release
	Arch    string `xml:"arch,attr"`
	Repo    string `xml:"repository,attr"`
}

// Search runs `zypper --xmlout search --details args...` and returns the
// packages, sorted by name, edition and arch. No match is an empty list,
// not an error.
func (z *Zypper) Search(args ...string) ([]ZypperPackage, error) {
	out, _, err := z.Run(append([]string{"--xmlout", "search", "--details", "--type", "package"}, args...)...)
	var ze *ZypperError
	if errors.As(err, &ze) && ze.Code == 104 { // ZYPPER_EXIT_INF_CAP_NOT_FOUND
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var doc struct {
		Solvables []ZypperPackage `xml:"search-result>solvable-list>solvable"`
	}
	if err := xml.Unmarshal([]byte(out), &doc); err != nil {
		return nil, fmt.Errorf("zypper search output: %v\n%s", err, out)
	}
	slices.SortFunc(doc.Solvables, func(a, b ZypperPackage) int {
		return strings.Compare(a.Name+" "+a.Edition+" "+a.Arch, b.Name+" "+b.Edition+" "+b.Arch)
	})
	return doc.Solvables, nil
}

// Info runs `zypper info pkg` and returns its fields ("Summary",
// "Version", "Repository", ...; the description is under "Description").
func (z *Zypper) Info(pkg string) (map[string]string, error) {
	out, _, err := z.Run("info", pkg)
	if err != nil {
		return nil, err
	}
	fields := map[string]string{}
	last := ""
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\n")
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, " ") && strings.TrimSpace(k) != "" {
			last = strings.TrimSpace(k)
			fields[last] = strings.TrimSpace(v)
			continue
		}
		if last == "Description" {
			fields[last] = strings.TrimSpace(fields[last] + "\n" + strings.TrimSpace(line))
		}
	}
	if fields["Name"] == "" {
		return nil, fmt.Errorf("zypper info %s: no package in\n%s", pkg, out)
	}
	return fields, nil
}

// DownloadOnly runs `zypper install --download-only pkgs...` (dependencies
// included, nothing installed) and returns the downloaded RPM files below
// the root's package cache, sorted by base name.
func (z *Zypper) DownloadOnly(pkgs ...string) ([]string, error) {
	if _, _, err := z.Run(append([]string{"install", "--download-only"}, pkgs...)...); err != nil {
		return nil, err
	}
	var files []string
	cache := filepath.Join(z.root, "var", "cache", "zypp", "packages")
	err := filepath.WalkDir(cache, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".rpm") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	slices.SortFunc(files, func(a, b string) int { return strings.Compare(filepath.Base(a), filepath.Base(b)) })
	return files, nil
}

// MetadataDir returns where zypper keeps the raw metadata of a repo it
// refreshed (repodata/ below it).
func (z *Zypper) MetadataDir(alias string) string {
	return filepath.Join(z.root, "var", "cache", "zypp", "raw", alias)
}
