package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// DefaultDNFTimeout bounds one dnf command unless WithTimeout says otherwise.
const DefaultDNFTimeout = 3 * time.Minute

// NEVRAFormat is the query format RepoQuery uses unless given its own:
// name-version-release.arch, without the epoch.
const NEVRAFormat = "%{name}-%{version}-%{release}.%{arch}"

// DNF runs the real dnf binary against a hermetic configuration: its own
// dnf.conf, an empty reposdir and varsdir, plugins off, its own cache
// directory and a fresh --installroot, all in a temporary directory. The host's
// /etc/dnf and /etc/yum.repos.d are never read and the host's rpm database is
// never touched.
//
// A DNF runs one command at a time; to model several clients at once, create
// several with NewDNF. Methods that fail the test (MakeCache, Install,
// RepoQuery, CleanAll, Installed) must be called from the test's goroutine;
// Run and RunContext only return errors and may be called from any goroutine.
type DNF struct {
	t        testing.TB
	bin      string
	dir      string // everything of this client lives below dir
	root     string // --installroot
	conf     string // path of dnf.conf
	cacheGen int    // FreshCache moves to a new cachedir
	settings dnfSettings
}

type dnfSettings struct {
	main    map[string]string
	repos   map[string]map[string]string
	timeout time.Duration
}

// DNFOption changes the configuration NewDNF writes.
type DNFOption func(*dnfSettings)

// WithMainOption sets key=value in the [main] section of dnf.conf, replacing
// a default.
func WithMainOption(key, value string) DNFOption {
	return func(s *dnfSettings) { s.main[key] = value }
}

// WithRepoOption sets key=value in the section of repo id, e.g.
// WithRepoOption("t", "repo_gpgcheck", "1").
func WithRepoOption(id, key, value string) DNFOption {
	return func(s *dnfSettings) {
		if s.repos[id] == nil {
			s.repos[id] = map[string]string{}
		}
		s.repos[id][key] = value
	}
}

// WithMetadataExpire sets metadata_expire. The default, "0", means every
// command revalidates repomd.xml with the server: dnf alone would trust
// metadata fetched within the same second (its age, in whole seconds, is not
// above 0), so with "0" each command also gets --refresh.
func WithMetadataExpire(v string) DNFOption {
	return WithMainOption("metadata_expire", v)
}

// WithTimeout bounds each dnf command (default DefaultDNFTimeout).
func WithTimeout(d time.Duration) DNFOption {
	return func(s *dnfSettings) { s.timeout = d }
}

// defaultMain is the [main] section, in the order it is written. dnf's own
// download limits (minrate=1000, timeout=30) are kept: the proxy must satisfy
// them, so tests should see them.
var defaultMain = [][2]string{
	{"gpgcheck", "0"},
	{"repo_gpgcheck", "0"},
	{"keepcache", "0"},
	{"install_weak_deps", "0"},
	{"metadata_expire", "0"},
	{"skip_if_unavailable", "False"},
	{"plugins", "0"},
	{"fastestmirror", "0"},
	{"best", "True"},
}

// NewDNF prepares a dnf client whose repositories are repos (id → baseurl).
// Repos inherit gpgcheck=0 and repo_gpgcheck=0 from [main] unless an option
// overrides them.
func NewDNF(t testing.TB, repos map[string]string, opts ...DNFOption) *DNF {
	t.Helper()
	d := &DNF{
		t:   t,
		bin: RequireTool(t, "dnf"),
		dir: t.TempDir(),
		settings: dnfSettings{
			main:    map[string]string{},
			repos:   map[string]map[string]string{},
			timeout: DefaultDNFTimeout,
		},
	}
	for _, kv := range defaultMain {
		d.settings.main[kv[0]] = kv[1]
	}
	for id, url := range repos {
		WithRepoOption(id, "baseurl", url)(&d.settings)
	}
	for _, o := range opts {
		o(&d.settings)
	}
	for id, r := range d.settings.repos {
		if r["baseurl"] == "" && r["mirrorlist"] == "" && r["metalink"] == "" {
			t.Fatalf("testenv: repo %q has options but no baseurl", id)
		}
	}
	d.root = filepath.Join(d.dir, "root")
	d.conf = filepath.Join(d.dir, "dnf.conf")
	for _, sub := range []string{d.root, filepath.Join(d.dir, "repos.d"), filepath.Join(d.dir, "vars")} {
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	d.writeConf()
	t.Cleanup(func() {
		if t.Failed() {
			d.logTail("var/log/dnf.librepo.log", 40)
		}
	})
	return d
}

// Root returns the --installroot directory.
func (d *DNF) Root() string { return d.root }

// ConfigPath returns the path of the generated dnf.conf.
func (d *DNF) ConfigPath() string { return d.conf }

// cachedir is the cachedir written to dnf.conf.
func (d *DNF) cachedir() string {
	return filepath.Join(d.dir, "cache", strconv.Itoa(d.cacheGen))
}

// CacheDir returns the host path of dnf's current cache directory. dnf 4 puts
// the configured cachedir below the --installroot; should a dnf not do so,
// the configured path itself is returned.
func (d *DNF) CacheDir() string {
	inRoot := filepath.Join(d.root, d.cachedir())
	if _, err := os.Stat(inRoot); err == nil {
		return inRoot
	}
	if _, err := os.Stat(d.cachedir()); err == nil {
		return d.cachedir()
	}
	return inRoot
}

func (d *DNF) writeConf() {
	d.t.Helper()
	var b strings.Builder
	b.WriteString("[main]\n")
	written := map[string]bool{}
	for _, kv := range defaultMain {
		fmt.Fprintf(&b, "%s=%s\n", kv[0], d.settings.main[kv[0]])
		written[kv[0]] = true
	}
	fmt.Fprintf(&b, "reposdir=%s\n", filepath.Join(d.dir, "repos.d"))
	fmt.Fprintf(&b, "varsdir=%s\n", filepath.Join(d.dir, "vars"))
	fmt.Fprintf(&b, "cachedir=%s\n", d.cachedir())
	for _, k := range slices.Sorted(maps.Keys(d.settings.main)) {
		if !written[k] {
			fmt.Fprintf(&b, "%s=%s\n", k, d.settings.main[k])
		}
	}
	for _, id := range slices.Sorted(maps.Keys(d.settings.repos)) {
		r := d.settings.repos[id]
		fmt.Fprintf(&b, "\n[%s]\nname=%s\n", id, id)
		for _, k := range slices.Sorted(maps.Keys(r)) {
			fmt.Fprintf(&b, "%s=%s\n", k, r[k])
		}
	}
	if err := os.WriteFile(d.conf, []byte(b.String()), 0o644); err != nil {
		d.t.Fatalf("testenv: %v", err)
	}
}

// Run runs `dnf -c CONF --installroot ROOT --releasever 9 -y [--refresh]
// args...` (see WithMetadataExpire for --refresh) and
// returns its output. err is non-nil when dnf exits non-zero or times out; its
// message holds the command and both outputs. Use Run to assert failures.
func (d *DNF) Run(args ...string) (stdout, stderr string, err error) {
	return d.RunContext(d.t.Context(), args...)
}

// RunContext is Run with a context; the per-command timeout still applies.
func (d *DNF) RunContext(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(ctx, d.settings.timeout)
	defer cancel()
	argv := []string{"-c", d.conf, "--installroot", d.root, "--releasever", "9", "-y"}
	if d.settings.main["metadata_expire"] == "0" {
		argv = append(argv, "--refresh")
	}
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, d.bin, argv...)
	cmd.Env = dnfEnv()
	cmd.WaitDelay = 5 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err = cmd.Run()
	elapsed := time.Since(start)
	d.t.Logf("dnf %s: %.2fs", strings.Join(args, " "), elapsed.Seconds())
	stdout, stderr = out.String(), errOut.String()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", err, context.Cause(ctx))
		}
		err = fmt.Errorf("dnf %s: %w\n--- stdout ---\n%s--- stderr ---\n%s",
			strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout, stderr, err
}

// dnfEnv is the environment of dnf: the test's, without proxy variables (the
// tests talk to loopback servers directly) and with a fixed locale so that
// messages can be matched.
func dnfEnv() []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "http_proxy", "https_proxy", "ftp_proxy", "all_proxy", "no_proxy", "lc_all", "lang", "language":
			return true
		}
		return false
	})
	return append(env, "LC_ALL=C.UTF-8", "LANG=C.UTF-8")
}

func (d *DNF) must(args ...string) string {
	d.t.Helper()
	stdout, _, err := d.Run(args...)
	if err != nil {
		d.t.Fatal(err)
	}
	return stdout
}

// MakeCache runs `dnf makecache` and fails the test if it fails.
func (d *DNF) MakeCache() {
	d.t.Helper()
	d.must("makecache")
}

// Install runs `dnf install pkgs...` and fails the test if it fails. It needs
// root (see RequireRoot).
func (d *DNF) Install(pkgs ...string) {
	d.t.Helper()
	RequireRoot(d.t)
	d.must(append([]string{"install"}, pkgs...)...)
}

// RepoQuery runs `dnf repoquery -q args...` and returns the output lines,
// sorted and without duplicates or blank lines. Unless args hold their own
// --qf/--queryformat, each line is a package in NEVRAFormat.
func (d *DNF) RepoQuery(args ...string) []string {
	d.t.Helper()
	argv := []string{"repoquery", "-q"}
	if !slices.ContainsFunc(args, func(a string) bool {
		return a == "--qf" || a == "--queryformat" ||
			strings.HasPrefix(a, "--qf=") || strings.HasPrefix(a, "--queryformat=")
	}) {
		argv = append(argv, "--qf", NEVRAFormat)
	}
	out := d.must(append(argv, args...)...)
	var lines []string
	for line := range strings.Lines(out) {
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	slices.Sort(lines)
	return slices.Compact(lines)
}

// CleanAll runs `dnf clean all` and fails the test if it fails.
func (d *DNF) CleanAll() {
	d.t.Helper()
	d.must("clean", "all")
}

// FreshCache points dnf at a new, empty cache directory and deletes the old
// one, so that the next command must fetch everything from the server again.
func (d *DNF) FreshCache() {
	d.t.Helper()
	old := d.CacheDir()
	d.cacheGen++
	d.writeConf()
	if err := os.RemoveAll(old); err != nil {
		d.t.Fatalf("testenv: %v", err)
	}
}

// Installed reports whether package name (a name or NEVRA, as rpm -q takes
// it) is installed in the install root, asking rpm itself.
func (d *DNF) Installed(name string) bool {
	d.t.Helper()
	rpm := RequireTool(d.t, "rpm")
	ctx, cancel := context.WithTimeout(d.t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rpm, "--root", d.root, "-q", name)
	cmd.Env = dnfEnv()
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return true
	case errors.As(err, &exit) && exit.ExitCode() == 1 && bytes.Contains(out, []byte("is not installed")):
		return false
	default:
		d.t.Fatalf("testenv: %s: %v\n%s", cmd, err, out)
		return false
	}
}

// logTail logs the last n lines of a log file below the install root.
func (d *DNF) logTail(rel string, n int) {
	b, err := os.ReadFile(filepath.Join(d.root, rel))
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	d.t.Logf("last lines of %s:\n%s", rel, strings.Join(lines, "\n"))
}
