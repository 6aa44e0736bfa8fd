package repofile

import (
	"slices"
	"strings"
	"testing"
)

// FuzzStanza checks that whatever the flags, an accepted stanza is
// one section of known keys: no flag value can add lines or sections.
func FuzzStanza(f *testing.F) {
	f.Add("http://proxy.example:8080", "almalinux", "9/BaseOS/x86_64/os", "annotate", "", "file:///k")
	f.Add("https://p/prefix/", "rocky", "/8/AppStream/x86_64/os/", "", "my-id", "")
	f.Add("http://p", "a", "x\ny=1", "raw", "", "")
	f.Add("http://p", "a", "x", "raw", "i\n[x]", "")
	f.Add("http://p", "a", "x", "raw", "", "file:///k\nrepo_gpgcheck=0")
	f.Fuzz(func(t *testing.T, proxy, repo, path, view, name, key string) {
		o := Options{Proxy: proxy, Repo: repo, Path: path, View: view, Name: name, GPGCheck: true}
		if key != "" {
			o.GPGKeys = []string{key}
		}
		st, err := o.Stanza()
		if err != nil {
			return
		}
		known := map[string]bool{"name": true, "baseurl": true, "enabled": true, "gpgcheck": true, "repo_gpgcheck": true, "gpgkey": true}
		var sections []string
		kv := map[string]string{}
		for line := range strings.Lines(st.String()) {
			line = strings.TrimSuffix(line, "\n")
			switch {
			case strings.HasPrefix(line, "#"):
			case strings.HasPrefix(line, "["):
				sections = append(sections, line)
			default:
				k, v, ok := strings.Cut(line, "=")
				if !ok || !known[k] {
					t.Fatalf("line %q is not a known key=value; stanza:\n%s", line, st)
				}
				if _, dup := kv[k]; dup {
					t.Fatalf("key %s twice; stanza:\n%s", k, st)
				}
				kv[k] = v
			}
		}
		if len(sections) != 1 || sections[0] != "["+st.ID+"]" {
			t.Fatalf("sections %q, want [%s]:\n%s", sections, st.ID, st)
		}
		if kv["baseurl"] != st.BaseURL || len(strings.Fields(st.BaseURL)) != 1 || strings.Contains(st.BaseURL, ",") {
			t.Fatalf("baseurl=%q, want %q", kv["baseurl"], st.BaseURL)
		}
		if key != "" && !slices.Contains(strings.Fields(kv["gpgkey"]), key) {
			t.Fatalf("gpgkey=%q does not list %q as one item", kv["gpgkey"], key)
		}
	})
}

func TestStanza(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opt       Options
		rewriting bool // set by the caller that knows the repo's own view
		want      []string
		absent    []string
	}{
		{"prefix is the root", Options{Proxy: "http://p:8080/", Repo: "test", GPGCheck: true}, false,
			[]string{"[dnfproxy-test]\n", "baseurl=http://p:8080/test/\n", "name=test via dnfproxy\n", "gpgcheck=1\n"},
			[]string{"repo_gpgcheck", "gpgkey="}},
		{"own view known to rewrite", Options{Proxy: "http://p", Repo: "almalinux", Path: "9/BaseOS/x86_64/os"}, true,
			[]string{"which rewrites metadata", "repo_gpgcheck=1\n", "gpgcheck=0\n",
				"gpgkey=http://p/almalinux/9/BaseOS/x86_64/os/repodata/repomd.xml.key\n"},
			[]string{"RPM-GPG-KEY"}},
		{"own view known not to rewrite", Options{Proxy: "http://p", Repo: "rocky", Path: "9/BaseOS/x86_64/os", GPGCheck: true}, false,
			[]string{"which serves upstream metadata", "gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-Rocky-9\n"},
			[]string{"repo_gpgcheck"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := tc.opt.Stanza()
			if err != nil {
				t.Fatal(err)
			}
			st.Rewriting, st.Known = tc.rewriting, true
			out := st.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("no %q in:\n%s", w, out)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(out, a) {
					t.Errorf("%q in:\n%s", a, out)
				}
			}
		})
	}
	for opt, want := range map[*Options]string{
		{Repo: "a"}: "proxy is required",
		{Proxy: "http://p", Repo: "a", View: "x"}:      `view "x" is not one of`,
		{Proxy: "http://p", Repo: "a", Path: "a/../b"}: `path "a/../b": want a plain sub-path`,
	} {
		if _, err := opt.Stanza(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want %q", *opt, err, want)
		}
	}
}
