// Package repofile renders the dnf .repo stanza that points a client at one
// repo root through dnfproxy. It is pure (no I/O): `dnfproxy repofile` and
// the admin API both build their stanza here, so they print the same text.
//
// Guarantee: whatever the options, an accepted stanza is one section of
// known keys; no option value can add lines, keys or sections.
package repofile

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Options say which root, through which proxy, in which view.
//
// Errors from Stanza begin with the option's name (proxy, repo, path, view,
// name, gpgkey), so a caller can prefix "--" for flags or leave it for query
// parameters.
type Options struct {
	Proxy   string   // the proxy's client listener as clients reach it
	Repo    string   // the repo's name in the proxy's configuration
	Path    string   // the repo root below the prefix; "" is the prefix itself
	View    string   // "", raw, annotate or filter; "" is the repo's own view
	Name    string   // the repo id; "" derives one
	GPGKeys []string // more package signing keys
	// GPGCheck turns on package signature checks (gpgcheck=1).
	GPGCheck bool
}

// Stanza is one .repo section before it is printed.
type Stanza struct {
	Opt     Options
	ID      string
	BaseURL string
	// Rewriting is set when the view signs its own repomd.xml: the stanza
	// then sets repo_gpgcheck=1 and lists the proxy's key. It is derived
	// from View; a caller that knows the repo's own view sets it (and
	// Known) itself.
	Rewriting bool
	// Known is set when Rewriting was learnt for a stanza without View
	// (from the proxy's answer or its configuration).
	Known     bool
	DistroKey string // "" when the repo is not recognised
}

var (
	// repoNameRE is the configuration's rule for repo names.
	repoNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	// repoIDRE is what dnf accepts as a repo id.
	repoIDRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)
)

// Stanza checks the options and computes the stanza.
func (o Options) Stanza() (*Stanza, error) {
	u, err := url.Parse(o.Proxy)
	switch {
	case o.Proxy == "":
		return nil, errors.New("proxy is required")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return nil, fmt.Errorf("proxy %q: want an absolute http:// or https:// URL, e.g. http://dnfproxy.example:8080", o.Proxy)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.ContainsAny(o.Proxy, " ,?#") ||
		strings.ContainsFunc(o.Proxy, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return nil, fmt.Errorf("proxy %q: no query, fragment, credentials, spaces or commas", o.Proxy)
	case o.Repo == "":
		return nil, errors.New("repo is required")
	case !repoNameRE.MatchString(o.Repo) || o.Repo == "." || o.Repo == "..":
		return nil, fmt.Errorf("repo %q is not a repo name (letters, digits, '.', '_', '-')", o.Repo)
	}
	switch o.View {
	case "", "raw", "annotate", "filter":
	default:
		return nil, fmt.Errorf("view %q is not one of raw, annotate, filter", o.View)
	}
	path := strings.Trim(o.Path, "/")
	for _, seg := range strings.Split(path, "/") {
		if path == "" {
			break // the repo's prefix is its root
		}
		if seg == "" || seg == "." || seg == ".." || strings.ContainsFunc(seg, notPlainPathRune) {
			return nil, fmt.Errorf("path %q: want a plain sub-path such as 9/BaseOS/x86_64/os", o.Path)
		}
	}
	if strings.HasSuffix(path, "/repodata") || path == "repodata" || strings.HasSuffix(path, "repomd.xml") {
		return nil, fmt.Errorf("path %q: give the repo root, the directory that holds repodata/", o.Path)
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
	base := strings.TrimRight(o.Proxy, "/") + "/" + prefix + "/"
	if path != "" {
		base += path + "/"
	}
	st := &Stanza{
		Opt:       o,
		BaseURL:   base,
		Rewriting: o.View == "annotate" || o.View == "filter",
		DistroKey: DistroKey(o.Repo, path),
		ID:        o.Name,
	}
	if st.ID == "" {
		st.ID = DefaultID(o.Repo, path, o.View)
	} else if !repoIDRE.MatchString(st.ID) {
		return nil, fmt.Errorf("name %q: a dnf repo id has only letters, digits and '-', '_', '.', ':'", st.ID)
	}
	return st, nil
}

// checkKeyURL checks a gpgkey value: one absolute file, http or https URL
// without spaces, commas or control characters (dnf splits gpgkey on
// whitespace and commas).
func checkKeyURL(k string) error {
	u, err := url.Parse(k)
	switch {
	case err != nil || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r == ',' || r == 0x7f }):
		return fmt.Errorf("gpgkey %q: want one URL without spaces or commas", k)
	case u.Scheme == "file" && strings.HasPrefix(u.Path, "/"):
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host != "":
	default:
		return fmt.Errorf("gpgkey %q: want a file:///path, http:// or https:// URL", k)
	}
	return nil
}

// notPlainPathRune reports the runes a path may not hold: URL syntax
// (query, fragment, escapes), backslashes, spaces and control characters.
func notPlainPathRune(r rune) bool {
	return r <= ' ' || r == 0x7f || strings.ContainsRune("?#%\\", r) || r == '\u2028' || r == '\u2029' || r == 0x85
}

// DefaultID derives a repo id: dnfproxy-REPO-PATH[-VIEW], lower case, every
// run of other characters a single '-'.
func DefaultID(repo, path, view string) string {
	s := strings.ToLower("dnfproxy-" + repo + "-" + path)
	if path == "" {
		s = strings.ToLower("dnfproxy-" + repo)
	}
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

// String renders the stanza as a .repo file.
func (st *Stanza) String() string {
	o := st.Opt
	var b strings.Builder
	where := strings.TrimSuffix(o.Repo+"/"+o.Path, "/")
	view := o.View
	switch {
	case view != "":
	case st.Known && st.Rewriting:
		view = "the repo's own view, which rewrites metadata"
	case st.Known:
		view = "the repo's own view, which serves upstream metadata"
	default:
		view = "the repo's own view (not asked: assumed not to rewrite metadata)"
	}
	fmt.Fprintf(&b, "# %s through dnfproxy at %s, view: %s.\n", where, strings.TrimRight(o.Proxy, "/"), view)
	fmt.Fprintf(&b, "# Save as /etc/yum.repos.d/%s.repo\n", st.ID)
	if st.Rewriting {
		b.WriteString("# The proxy signs the repomd.xml it rewrites: repo_gpgcheck checks that signature\n")
		b.WriteString("# with the proxy's key; the packages are upstream's, signed by their distribution.\n")
	}
	fmt.Fprintf(&b, "[%s]\n", st.ID)
	name := strings.Join(strings.Fields(o.Repo+" "+o.Path), " ") + " via dnfproxy"
	if o.View != "" {
		name += " (" + o.View + ")"
	}
	fmt.Fprintf(&b, "name=%s\n", name)
	fmt.Fprintf(&b, "baseurl=%s\n", st.BaseURL)
	b.WriteString("enabled=1\n")
	var keys []string
	if st.Rewriting {
		keys = append(keys, st.BaseURL+"repodata/repomd.xml.key")
	}
	if o.GPGCheck {
		b.WriteString("gpgcheck=1\n")
		if st.DistroKey != "" {
			keys = append(keys, st.DistroKey)
		}
		keys = append(keys, o.GPGKeys...)
		if st.DistroKey == "" && len(o.GPGKeys) == 0 {
			fmt.Fprintf(&b, "# No distribution key is known for %q: packages are checked against the keys\n", o.Repo)
			b.WriteString("# already imported into rpm; name the signing key with gpgkey.\n")
		}
	} else {
		b.WriteString("gpgcheck=0\n")
	}
	if st.Rewriting {
		b.WriteString("repo_gpgcheck=1\n")
	}
	if len(keys) > 0 {
		fmt.Fprintf(&b, "gpgkey=%s\n", strings.Join(keys, " "))
	}
	return b.String()
}

// DistroKey returns the gpgkey URL of the distribution a repo belongs to, as
// installed by its release package, when the repo name or path say which
// distribution and major release it is; "" otherwise.
func DistroKey(repo, path string) string {
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
