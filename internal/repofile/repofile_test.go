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
