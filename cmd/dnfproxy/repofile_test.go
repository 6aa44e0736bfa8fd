package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

func runRepofileArgs(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = repofileCommand(context.Background(), args, &out, &errOut, http.DefaultClient)
	return code, out.String(), errOut.String()
}

// stanzaKeys returns the key=value lines of a .repo text (comments out).
func stanzaKeys(text string) map[string]string {
	kv := map[string]string{}
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			kv[k] = v
		}
	}
	return kv
}

func TestRepofileOffline(t *testing.T) {
	const proxy = "http://proxy.example:8080"
	for _, tc := range []struct {
		name string
		args []string
		want map[string]string // "" value: the key must be absent
		id   string
	}{
		{"alma 9 annotate", []string{"--repo", "almalinux", "--path", "9/BaseOS/x86_64/os", "--view", "annotate"},
			map[string]string{
				"baseurl":       proxy + "/almalinux@annotate/9/BaseOS/x86_64/os/",
				"gpgcheck":      "1",
				"repo_gpgcheck": "1",
				"gpgkey":        proxy + "/almalinux@annotate/9/BaseOS/x86_64/os/repodata/repomd.xml.key file:///etc/pki/rpm-gpg/RPM-GPG-KEY-AlmaLinux-9",
			}, "dnfproxy-almalinux-9-baseos-x86_64-os-annotate"},
		{"rocky 9 filter, own id", []string{"--repo", "rocky", "--path", "/9.4/AppStream/x86_64/os/", "--view", "filter", "--name", "rocky-appstream"},
			map[string]string{
				"baseurl":       proxy + "/rocky@filter/9.4/AppStream/x86_64/os/",
				"repo_gpgcheck": "1",
				"gpgkey":        proxy + "/rocky@filter/9.4/AppStream/x86_64/os/repodata/repomd.xml.key file:///etc/pki/rpm-gpg/RPM-GPG-KEY-Rocky-9",
			}, "rocky-appstream"},
		{"rocky 8 raw", []string{"--repo", "rocky", "--path", "8/BaseOS/x86_64/os", "--view", "raw"},
			map[string]string{
				"baseurl":       proxy + "/rocky@raw/8/BaseOS/x86_64/os/",
				"gpgcheck":      "1",
				"repo_gpgcheck": "",
				"gpgkey":        "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-rockyofficial",
			}, "dnfproxy-rocky-8-baseos-x86_64-os-raw"},
		{"centos stream 10, no view", []string{"--repo", "centos-stream", "--path", "10-stream/BaseOS/x86_64/os"},
			map[string]string{
				"baseurl":       proxy + "/centos-stream/10-stream/BaseOS/x86_64/os/",
				"repo_gpgcheck": "",
				"gpgkey":        "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-centosofficial-SHA256",
			}, "dnfproxy-centos-stream-10-stream-baseos-x86_64-os"},
		{"centos stream 9", []string{"--repo", "centos-stream", "--path", "9-stream/AppStream/x86_64/os"},
			map[string]string{"gpgkey": "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-centosofficial"}, "dnfproxy-centos-stream-9-stream-appstream-x86_64-os"},
		{"alma 8", []string{"--repo", "alma8", "--path", "8.10/BaseOS/x86_64/os"},
			map[string]string{"gpgkey": "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-AlmaLinux"}, "dnfproxy-alma8-8.10-baseos-x86_64-os"},
		{"epel", []string{"--repo", "fedora-epel", "--path", "9/Everything/x86_64"},
			map[string]string{"gpgkey": "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-EPEL-9"}, "dnfproxy-fedora-epel-9-everything-x86_64"},
		{"unknown distro, own key, no package check", []string{"--repo", "internal", "--path", "el9/x86_64", "--view", "annotate",
			"--gpgkey", "https://keys.example/a.asc", "--gpgcheck=false"},
			map[string]string{
				"gpgcheck":      "0",
				"repo_gpgcheck": "1",
				"gpgkey":        proxy + "/internal@annotate/el9/x86_64/repodata/repomd.xml.key",
			}, "dnfproxy-internal-el9-x86_64-annotate"},
		{"unknown distro, extra keys", []string{"--repo", "internal", "--path", "x86_64", "--gpgkey", "https://keys.example/a.asc", "--gpgkey", "file:///k"},
			map[string]string{"gpgcheck": "1", "gpgkey": "https://keys.example/a.asc file:///k"}, "dnfproxy-internal-x86_64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runRepofileArgs(t, append([]string{"--proxy", proxy + "/", "--offline"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if !strings.Contains(out, "\n["+tc.id+"]\n") {
				t.Errorf("section [%s] missing:\n%s", tc.id, out)
			}
			kv := stanzaKeys(out)
			if kv["enabled"] != "1" || kv["name"] == "" {
				t.Errorf("enabled/name missing:\n%s", out)
			}
			for k, want := range tc.want {
				if got, ok := kv[k]; want == "" && ok {
					t.Errorf("%s=%s present, want it absent:\n%s", k, got, out)
				} else if want != "" && got != want {
					t.Errorf("%s=%q, want %q:\n%s", k, got, want, out)
				}
			}
		})
	}
}

func TestRepofileBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--repo", "a", "--path", "p"}, "--proxy is required"},
		{[]string{"--proxy", "proxy.example:8080", "--repo", "a", "--path", "p"}, "want an absolute http:// or https:// URL"},
		{[]string{"--proxy", "http://p", "--path", "p"}, "--repo is required"},
		{[]string{"--proxy", "http://p/a b", "--repo", "a", "--path", "p"}, "no query, fragment, credentials, spaces or commas"},
		{[]string{"--proxy", "http://p", "--repo", "a@raw", "--path", "p"}, `--repo "a@raw" is not a repo name`},
		{[]string{"--proxy", "http://p", "--repo", "a"}, "--path is required"},
		{[]string{"--proxy", "http://p", "--repo", "a", "--path", "9/../x"}, `--path "9/../x": want a plain sub-path`},
		{[]string{"--proxy", "http://p", "--repo", "a", "--path", "9/os/repodata"}, "give the repo root"},
		{[]string{"--proxy", "http://p", "--repo", "a", "--path", "p", "--view", "filtered"}, `--view "filtered" is not one of raw, annotate, filter`},
		{[]string{"--proxy", "http://p", "--repo", "a", "--path", "p", "--name", "my repo"}, `--name "my repo": a dnf repo id`},
		{[]string{"--proxy", "http://p", "--repo", "a", "--path", "p", "--gpgkey", "/etc/pki/key"}, `--gpgkey "/etc/pki/key": want a file:///path`},
		{[]string{"--proxy", "http://p", "--repo", "a", "--path", "p", "--gpgkey", "file:///a,file:///b"}, `--gpgkey "file:///a,file:///b": want one URL`},
		{[]string{"--proxy", "http://p", "--repo", "a", "--path", "p\nx"}, `want a plain sub-path`},
	} {
		code, _, errOut := runRepofileArgs(t, append(tc.args, "--offline")...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("repofile %q: exit %d, stderr %q; want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
}

// TestRepofileWorksWithDNF runs the real proxy (serve) over a createrepo_c
// upstream, prints stanzas with `repofile` and gives them to the real dnf.
func TestRepofileWorksWithDNF(t *testing.T) {
	testenv.RequireTool(t, "createrepo_c")
	testenv.RequireTool(t, "dnf")
	t.Setenv(notifySocketEnv, "")
	up := t.TempDir()
	testenv.MakeRepo(t, filepath.Join(up, "el9", "os"), testenv.InitialRPMs())
	upstream := httptest.NewServer(http.FileServer(http.Dir(up)))
	t.Cleanup(upstream.Close)
	// The repo's own view is annotate, so the probe must find out it rewrites.
	rs := startServe(t, "--config", writeServeConfig(t, upstream.URL+"/", "    compat:\n      mode: annotate\n"))

	d := testenv.NewDNF(t, nil)
	reposd := filepath.Join(filepath.Dir(d.ConfigPath()), "repos.d")
	cases := []struct {
		id, view     string
		repoGPGCheck bool
	}{
		{"t-annotate", "annotate", true},
		{"t-own-view", "", true},
		{"t-raw", "raw", false},
	}
	for _, c := range cases {
		args := []string{"--proxy", rs.client, "--repo", "test", "--path", "el9/os", "--name", c.id, "--gpgcheck=false"}
		if c.view != "" {
			args = append(args, "--view", c.view)
		}
		code, out, errOut := runRepofileArgs(t, args...)
		if code != 0 {
			t.Fatalf("repofile %q: exit %d: %s", args, code, errOut)
		}
		if got := stanzaKeys(out)["repo_gpgcheck"] == "1"; got != c.repoGPGCheck {
			t.Errorf("%s: repo_gpgcheck=1 is %v, want %v:\n%s", c.id, got, c.repoGPGCheck, out)
		}
		if err := os.WriteFile(filepath.Join(reposd, c.id+".repo"), []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d.MakeCache() // repo_gpgcheck=1: the proxy's signature verifies with the key the stanza names
	for _, c := range cases {
		if got := d.RepoQuery("--repo", c.id); !slices.Equal(got, testenv.InitialNEVRAs()) {
			t.Errorf("repoquery --repo %s = %v, want %v", c.id, got, testenv.InitialNEVRAs())
		}
	}
	d.Install("--repo", "t-annotate", "dnfpt-app")
	if !d.Installed("dnfpt-app") || !d.Installed("dnfpt-lib") {
		t.Error("dnfpt-app and its dependency not installed through the printed stanza")
	}

	// A path that is not a repo root is reported before a client sees it.
	code, _, errOut := runRepofileArgs(t, "--proxy", rs.client, "--repo", "test", "--path", "el9/nope")
	if code != 1 || !strings.Contains(errOut, "404 Not Found") {
		t.Errorf("repofile for a missing root: exit %d, %s", code, errOut)
	}
	code, _, errOut = runRepofileArgs(t, "--proxy", rs.client, "--repo", "nosuchrepo", "--path", "el9/os")
	if code != 1 || !strings.Contains(errOut, "nosuchrepo") {
		t.Errorf("repofile for an unknown repo: exit %d, %s", code, errOut)
	}
}
