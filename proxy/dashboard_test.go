package proxy

import (
	"context"
	"github.com/dnfproxy/dnfproxy/internal/view"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

// dashboardRepos are two repos over one upstream: one with compat on (it
// gets a divergence section), one off (it does not).
func dashboardRepos(upURL string) []config.Repo {
	alma := testRepo("alma", upURL, time.Hour)
	alma.Compat.Mode = config.ModeAnnotate
	alma.Compat.Reference = "rhel"
	return []config.Repo{alma, testRepo("rhel", upURL, time.Hour)}
}

// checkDashboard asserts what an admin looks for on the page.
func checkDashboard(t *testing.T, page string) {
	t.Helper()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`<table[^>]*id="divergences"`),
		regexp.MustCompile(`<table[^>]*id="repos"`),
		regexp.MustCompile(`<tr[^>]*class="repo"[^>]*data-repo="alma"`),
		regexp.MustCompile(`<tr[^>]*class="repo"[^>]*data-repo="rhel"`),
		regexp.MustCompile(`<tbody[^>]*data-repo="alma"`),
		regexp.MustCompile(`no divergences known`),
		regexp.MustCompile(`<th>NEVRA</th>\s*<th>Classes</th>\s*<th>Reasons</th>\s*<th>Action</th>`),
		regexp.MustCompile(`<table[^>]*id="cache"`),
	} {
		if !want.MatchString(page) {
			t.Errorf("dashboard has no %s", want)
		}
	}
	if regexp.MustCompile(`<tbody[^>]*data-repo="rhel"`).MatchString(page) {
		t.Error("a repo with compat off has a divergence section")
	}
	// The revision of the fetched generation is shown.
	if !regexp.MustCompile(`<td>\d{6,}</td>`).MatchString(page) {
		t.Error("dashboard shows no metadata revision")
	}
}

func TestDashboardHTML(t *testing.T) {
	up := newFakeUpstream(t, newRepoDir(t, "", testenv.InitialRPMs()))
	a := startAdmin(t, dashboardRepos(up.URL()), nil)
	a.fetch(t, "/alma/repodata/repomd.xml")
	status, _, body := a.do(t, "GET", "/", "Bearer "+testToken, nil)
	if status != http.StatusOK {
		t.Fatalf("GET /: %d %s", status, body)
	}
	checkDashboard(t, string(body))
	if strings.Contains(string(body), "<script") {
		t.Error("dashboard has scripts")
	}
}

// TestDashboardChromium loads the dashboard in headless Chromium, the token
// given as the password of HTTP Basic auth in the URL, as a browser user
// would, and checks the rendered DOM.
func TestDashboardChromium(t *testing.T) {
	chromium := testenv.RequireTool(t, "chromium")
	up := newFakeUpstream(t, newRepoDir(t, "", testenv.InitialRPMs()))
	a := startAdmin(t, dashboardRepos(up.URL()), nil)
	a.fetch(t, "/alma/repodata/repomd.xml")

	u, err := url.Parse(a.admin.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	dump := func(u *url.URL) string {
		ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, chromium,
			"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--disable-dev-shm-usage", "--user-data-dir="+t.TempDir(),
			"--dump-dom", u.String())
		out, err := cmd.Output()
		if err != nil {
			var stderr string
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("chromium: %v\n%s", err, stderr)
		}
		return string(out)
	}

	u.User = url.UserPassword("admin", testToken)
	checkDashboard(t, dump(u))

	// A wrong password gets no dashboard.
	u.User = url.UserPassword("admin", "wrong")
	if page := dump(u); strings.Contains(page, `id="divergences"`) {
		t.Error("dashboard shown with a wrong password")
	}
}

// TestDashboardDivergenceRows renders the template with a report that has
// packages, as the rewriter produces them.
func TestDashboardDivergenceRows(t *testing.T) {
	var buf strings.Builder
	err := dashboardTmpl.Execute(&buf, dashboardData{
		Now: time.Now(),
		Divergences: []divergenceSection{{
			Mode: "annotate",
			Report: view.Report{Repo: "alma", Path: "9/os/", Reference: "rhel", Packages: []view.DivergentPackage{{
				NEVRA: "dnfpt-lib-1.0-1.el9.alma.1.noarch", Classes: []string{"patched", "abi-changed"},
				Reasons: []string{"vendor release marker .alma.1", "<b>soname</b> changed"}, Action: "annotate",
			}}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	row := regexp.MustCompile(`<tr class="divergence"><td><code>dnfpt-lib-1.0-1.el9.alma.1.noarch</code></td><td>patched, abi-changed</td><td>vendor release marker .alma.1<br>&lt;b&gt;soname&lt;/b&gt; changed</td><td>annotate</td></tr>`)
	if !row.MatchString(page) {
		t.Errorf("no divergence row (reasons escaped) in:\n%s", page)
	}
	if strings.Contains(page, "no divergences known") {
		t.Error(`"no divergences known" shown beside a divergence`)
	}
}

// TestDashboardNeverGoesUpstream loads the page after the metadata TTL: it
// shows what the proxy has, and sends nothing upstream.
func TestDashboardNeverGoesUpstream(t *testing.T) {
	up := newFakeUpstream(t, newRepoDir(t, "", testenv.InitialRPMs()))
	repos := dashboardRepos(up.URL())
	for i := range repos {
		repos[i].MetadataTTL = config.Duration(100 * time.Millisecond)
	}
	a := startAdmin(t, repos, nil)
	a.fetch(t, "/alma/repodata/repomd.xml")
	time.Sleep(200 * time.Millisecond) // past the TTL of both repos
	before := up.TotalHits()
	for _, path := range []string{"/", "/api/v1/repos"} {
		if status, _, body := a.do(t, "GET", path, "Bearer "+testToken, nil); status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, status, body)
		}
	}
	if after := up.TotalHits(); after != before {
		t.Fatalf("loading the dashboard and the repo list sent %d requests upstream", after-before)
	}
}
