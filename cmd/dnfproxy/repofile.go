package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"
)

const repofileUsage = `usage: dnfproxy repofile --proxy URL --repo NAME --path SUBPATH
                         [--view raw|annotate|filter] [--name ID]
                         [--gpgkey URL]... [--gpgcheck=false] [--offline]

Prints a dnf .repo stanza that points a client at one repo root through a
running dnfproxy. Save it as /etc/yum.repos.d/ID.repo on the client.

  --proxy URL      the proxy's client listener as clients reach it,
                   e.g. http://dnfproxy.example:8080
  --repo NAME      the repo's name in the proxy's configuration (its URL prefix)
  --path SUBPATH   the repo root below the prefix, e.g. 9/BaseOS/x86_64/os
  --view VIEW      raw, annotate or filter: put the view in the baseurl
                   (/NAME@VIEW/...). Default: the repo's own view (compat.mode).
  --name ID        the repo id (default: derived from repo, path and view)
  --gpgkey URL     another key that signs the packages (repeatable); the
                   distribution's key is added when the repo is recognised
                   (AlmaLinux, Rocky Linux, CentOS Stream, RHEL, EPEL)
  --gpgcheck=false do not check package signatures (unsigned packages)
  --offline        do not ask the proxy; without --view the stanza then
                   assumes the repo's own view does not rewrite metadata

Unless --offline, the proxy is asked for the root's repodata/repomd.xml, so a
wrong --repo or --path is reported here rather than on the client. In views
that rewrite metadata (annotate, filter) repomd.xml is signed by the proxy: the
stanza sets repo_gpgcheck=1 and lists the proxy's key
(repodata/repomd.xml.key) in gpgkey next to the package keys.
`

// repofileOptions are the flags of `dnfproxy repofile`.
type repofileOptions struct {
	Proxy, Repo, Path, View, Name string
	GPGKeys                       []string
	GPGCheck                      bool
	Offline                       bool
}

// runRepofile is `dnfproxy repofile`; it returns the exit status.
func runRepofile(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return repofileCommand(ctx, args, os.Stdout, os.Stderr, http.DefaultClient)
}

func repofileCommand(ctx context.Context, args []string, stdout, stderr io.Writer, client *http.Client) int {
	fs := flag.NewFlagSet("repofile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, repofileUsage) }
	opt := repofileOptions{}
	fs.StringVar(&opt.Proxy, "proxy", "", "proxy base URL")
	fs.StringVar(&opt.Repo, "repo", "", "repo name")
	fs.StringVar(&opt.Path, "path", "", "repo root below the prefix")
	fs.StringVar(&opt.View, "view", "", "raw | annotate | filter")
	fs.StringVar(&opt.Name, "name", "", "repo id")
	fs.Func("gpgkey", "package signing key URL (repeatable)", func(s string) error {
		opt.GPGKeys = append(opt.GPGKeys, s)
		return nil
	})
	fs.BoolVar(&opt.GPGCheck, "gpgcheck", true, "check package signatures")
	fs.BoolVar(&opt.Offline, "offline", false, "do not contact the proxy")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "dnfproxy repofile: unexpected argument %q\n\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	st, err := opt.stanza()
	if err != nil {
		fmt.Fprintf(stderr, "dnfproxy repofile: %v\n\n", err)
		fs.Usage()
		return 2
	}
	if !opt.Offline {
		if err := st.probe(ctx, client); err != nil {
			fmt.Fprintf(stderr, "dnfproxy repofile: %v\n", err)
			return 1
		}
	}
	io.WriteString(stdout, st.String())
	return 0
}

var (
	// repoNameRE is the configuration's rule for repo names.
	repoNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	// repoIDRE is what dnf accepts as a repo id.
	repoIDRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)
)

// stanza is one .repo section before it is printed.
type stanza struct {
	opt       repofileOptions
	id        string
	baseurl   string
	rewriting bool   // the view signs its own repomd.xml
	probed    bool   // rewriting was learnt from the proxy
	distroKey string // "" when the repo is not recognised
}

// stanza checks the options and computes what needs no network.
func (o repofileOptions) stanza() (*stanza, error) {
	u, err := url.Parse(o.Proxy)
	switch {
	case o.Proxy == "":
		return nil, errors.New("--proxy is required")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return nil, fmt.Errorf("--proxy %q: want an absolute http:// or https:// URL, e.g. http://dnfproxy.example:8080", o.Proxy)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.ContainsAny(o.Proxy, " ,?#"):
		return nil, fmt.Errorf("--proxy %q: no query, fragment, credentials, spaces or commas", o.Proxy)
	case o.Repo == "":
		return nil, errors.New("--repo is required")
	case !repoNameRE.MatchString(o.Repo) || o.Repo == "." || o.Repo == "..":
		return nil, fmt.Errorf("--repo %q is not a repo name (letters, digits, '.', '_', '-')", o.Repo)
	}
	switch o.View {
	case "", "raw", "annotate", "filter":
	default:
		return nil, fmt.Errorf("--view %q is not one of raw, annotate, filter", o.View)
	}
	path := strings.Trim(o.Path, "/")
	if o.Path == "" {
		return nil, errors.New("--path is required (the repo root below the prefix, e.g. 9/BaseOS/x86_64/os)")
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.ContainsFunc(seg, notPlainPathRune) {
			return nil, fmt.Errorf("--path %q: want a plain sub-path such as 9/BaseOS/x86_64/os", o.Path)
		}
	}
	if strings.HasSuffix(path, "/repodata") || path == "repodata" || strings.HasSuffix(path, "repomd.xml") {
		return nil, fmt.Errorf("--path %q: give the repo root, the directory that holds repodata/", o.Path)
	}
	for _, k := range o.GPGKeys {
		if err := checkKeyURL(k); err != nil {
			return nil, err
		}
	}
	o.Path = path
	prefix := o.Repo
	if o.View != "" {
		prefix += "@" + o.View
	}
	st := &stanza{
		opt:       o,
		baseurl:   strings.TrimRight(o.Proxy, "/") + "/" + prefix + "/" + path + "/",
		rewriting: o.View == "annotate" || o.View == "filter",
		distroKey: distroKey(o.Repo, path),
		id:        o.Name,
	}
	if st.id == "" {
		st.id = defaultRepoID(o.Repo, path, o.View)
	} else if !repoIDRE.MatchString(st.id) {
		return nil, fmt.Errorf("--name %q: a dnf repo id has only letters, digits and '-', '_', '.', ':'", st.id)
	}
	return st, nil
}

// checkKeyURL checks a --gpgkey value: one absolute file, http or https
// URL without spaces, commas or control characters (dnf splits gpgkey on
// whitespace and commas).
func checkKeyURL(k string) error {
	u, err := url.Parse(k)
	switch {
	case err != nil || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r == ',' || r == 0x7f }):
		return fmt.Errorf("--gpgkey %q: want one URL without spaces or commas", k)
	case u.Scheme == "file" && strings.HasPrefix(u.Path, "/"):
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host != "":
	default:
		return fmt.Errorf("--gpgkey %q: want a file:///path, http:// or https:// URL", k)
	}
	return nil
}

// notPlainPathRune reports the runes a --path may not hold: URL syntax
// (query, fragment, escapes), backslashes, spaces and control characters.
func notPlainPathRune(r rune) bool {
	return r <= ' ' || r == 0x7f || strings.ContainsRune("?#%\\", r) || r == '\u2028' || r == '\u2029' || r == 0x85
}

// defaultRepoID derives a repo id: dnfproxy-REPO-PATH[-VIEW], lower case,
// every run of other characters a single '-'.
func defaultRepoID(repo, path, view string) string {
	s := strings.ToLower("dnfproxy-" + repo + "-" + path)
	if view != "" {
		s += "-" + view
	}
	var b strings.Builder
	dash := false
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.Trim(b.String(), "-")
}

// probe fetches the root's repomd.xml through the proxy: it must be there,
// and without --view its content tells whether the repo's own view
// rewrites (a rewritten repomd.xml carries the abi-divergence record).
func (st *stanza) probe(ctx context.Context, client *http.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	u := st.baseurl + "repodata/repomd.xml"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("asking the proxy: %w (use --offline to print the stanza anyway)", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("GET %s: 404 Not Found: is %q a repo of this proxy and %q a repo root (the directory holding repodata/)?", u, st.opt.Repo, st.opt.Path)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, firstLine(body))
	case !bytes.Contains(body, []byte("<repomd")):
		return fmt.Errorf("GET %s: the answer is not a repomd.xml", u)
	}
	if st.opt.View == "" {
		st.rewriting = bytes.Contains(body, []byte(`type="abi-divergence"`))
		st.probed = true
	}
	return nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// String renders the stanza as a .repo file.
func (st *stanza) String() string {
	o := st.opt
	var b strings.Builder
	where := o.Repo + "/" + o.Path
	view := o.View
	switch {
	case view != "":
	case st.probed && st.rewriting:
		view = "the repo's own view, which rewrites metadata"
	case st.probed:
		view = "the repo's own view, which serves upstream metadata"
	default:
		view = "the repo's own view (not asked: assumed not to rewrite metadata)"
	}
	fmt.Fprintf(&b, "# %s through dnfproxy at %s, view: %s.\n", where, strings.TrimRight(o.Proxy, "/"), view)
	fmt.Fprintf(&b, "# Save as /etc/yum.repos.d/%s.repo\n", st.id)
	if st.rewriting {
		b.WriteString("# The proxy signs the repomd.xml it rewrites: repo_gpgcheck checks that signature\n")
		b.WriteString("# with the proxy's key; the packages are upstream's, signed by their distribution.\n")
	}
	fmt.Fprintf(&b, "[%s]\n", st.id)
	name := o.Repo + " " + o.Path + " via dnfproxy"
	if o.View != "" {
		name += " (" + o.View + ")"
	}
	fmt.Fprintf(&b, "name=%s\n", name)
	fmt.Fprintf(&b, "baseurl=%s\n", st.baseurl)
	b.WriteString("enabled=1\n")
	var keys []string
	if st.rewriting {
		keys = append(keys, st.baseurl+"repodata/repomd.xml.key")
	}
	if o.GPGCheck {
		b.WriteString("gpgcheck=1\n")
		if st.distroKey != "" {
			keys = append(keys, st.distroKey)
		}
		keys = append(keys, o.GPGKeys...)
		if st.distroKey == "" && len(o.GPGKeys) == 0 {
			fmt.Fprintf(&b, "# No distribution key is known for %q: packages are checked against the keys\n", o.Repo)
			b.WriteString("# already imported into rpm; name the signing key with --gpgkey URL.\n")
		}
	} else {
		b.WriteString("gpgcheck=0\n")
	}
	if st.rewriting {
		b.WriteString("repo_gpgcheck=1\n")
	}
	if len(keys) > 0 {
		fmt.Fprintf(&b, "gpgkey=%s\n", strings.Join(keys, " "))
	}
	return b.String()
}

// distroKey returns the gpgkey URL of the distribution a repo belongs to,
// as installed by its release package, when the repo name or path say
// which distribution and major release it is; "" otherwise.
func distroKey(repo, path string) string {
	major := majorRelease(path)
	s := strings.ToLower(repo + "/" + path)
	const dir = "file:///etc/pki/rpm-gpg/"
	switch {
	case strings.Contains(s, "epel"):
		if major != "" {
			return dir + "RPM-GPG-KEY-EPEL-" + major
		}
	case strings.Contains(s, "alma"):
		switch major {
		case "":
		case "8":
			return dir + "RPM-GPG-KEY-AlmaLinux"
		default:
			return dir + "RPM-GPG-KEY-AlmaLinux-" + major
		}
	case strings.Contains(s, "rocky"):
		switch major {
		case "":
		case "8":
			return dir + "RPM-GPG-KEY-rockyofficial"
		default:
			return dir + "RPM-GPG-KEY-Rocky-" + major
		}
	case strings.Contains(s, "centos") || strings.Contains(s, "stream"):
		switch major {
		case "":
		case "8", "9":
			return dir + "RPM-GPG-KEY-centosofficial"
		default:
			return dir + "RPM-GPG-KEY-centosofficial-SHA256"
		}
	case strings.Contains(s, "rhel") || strings.Contains(s, "redhat"):
		return dir + "RPM-GPG-KEY-redhat-release"
	}
	return ""
}

var releaseDir = regexp.MustCompile(`^(?:el)?(\d+)(?:\.\d+)*(?:-stream)?$`)

// majorRelease returns the major release named by the first path element
// that looks like one ("9", "9.4", "9-stream", "el9"), or "".
func majorRelease(path string) string {
	for _, seg := range strings.Split(path, "/") {
		if m := releaseDir.FindStringSubmatch(strings.ToLower(seg)); m != nil {
			return m[1]
		}
	}
	return ""
}
