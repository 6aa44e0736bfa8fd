package proxy

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/internal/view"
	"github.com/dnfproxy/dnfproxy/metadata"
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
		regexp.MustCompile(`<table[^>]*id="counts"`),
		regexp.MustCompile(`<tr[^>]*class="count"[^>]*data-repo="alma"`),
		regexp.MustCompile(`<table[^>]*id="divergences"`),
		regexp.MustCompile(`<table[^>]*id="repos"`),
		regexp.MustCompile(`<tr[^>]*class="repo"[^>]*data-repo="alma"`),
		regexp.MustCompile(`<tr[^>]*class="repo"[^>]*data-repo="rhel"`),
		regexp.MustCompile(`<td class="health ok">fresh</td>`),
		regexp.MustCompile(`<a class="repofile" href="/repofile\?path=&amp;repo=alma">`),
		regexp.MustCompile(`no divergences known`),
		regexp.MustCompile(`<th>NEVRA</th>\s*<th>Classes</th>\s*<th>Action</th>`),
		regexp.MustCompile(`<table[^>]*id="cache"`),
		regexp.MustCompile(`<svg[^>]*id="class-chart"`),
		regexp.MustCompile(`<div id="traffic-chart"><svg`),
		regexp.MustCompile(`<div id="bytes-chart"><svg`),
		regexp.MustCompile(`<select name="class">`),
	} {
		if !want.MatchString(page) {
			t.Errorf("dashboard has no %s", want)
		}
	}
	if regexp.MustCompile(`<tr[^>]*class="count"[^>]*data-repo="rhel"`).MatchString(page) {
		t.Error("a repo with compat off is counted")
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
	for _, q := range []string{"/?page=0", "/?page=x", "/?action=drop"} {
		if status, _, body := a.do(t, "GET", q, "Bearer "+testToken, nil); status != http.StatusBadRequest {
			t.Errorf("GET %s: %d %s, want 400", q, status, body)
		}
	}
}

// divergentAdmin runs an admin over an el9 repo in annotate mode whose
// dnfpt-lib is an AlmaLinux build that a rule marks abi-changed: the page
// has one package with two classes.
func divergentAdmin(t *testing.T, mode config.Mode) *testAdmin {
	t.Helper()
	dir := newRepoDir(t, "el9", append(testenv.InitialRPMs(), testenv.RPMLibAlma))
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte(almaRule), 0o644); err != nil {
		t.Fatal(err)
	}
	up := newFakeUpstream(t, dir)
	r := testRepo("test", up.URL(), time.Hour)
	r.Compat.Mode = mode
	a := startAdmin(t, []config.Repo{r}, func(c *config.Config) {
		c.RuleFiles = []string{rules}
		c.Signing.KeyFile = "testdata/signing-key.asc"
	})
	viewFiles(t, a.testProxy, "/test/el9/")
	return a
}

// chromium runs headless Chromium on u with args (--dump-dom or
// --screenshot=FILE) and returns its standard output.
func chromium(t *testing.T, bin string, u *url.URL, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--user-data-dir=" + t.TempDir()},
		append(args, u.String())...)...)
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

// TestDashboardChromium loads the dashboard in headless Chromium, the token
// given as the password of HTTP Basic auth in the URL, as a browser user
// would, and checks the rendered DOM.
func TestDashboardChromium(t *testing.T) {
	bin := testenv.RequireTool(t, "chromium")
	up := newFakeUpstream(t, newRepoDir(t, "", testenv.InitialRPMs()))
	a := startAdmin(t, dashboardRepos(up.URL()), nil)
	a.fetch(t, "/alma/repodata/repomd.xml")

	u, err := url.Parse(a.admin.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("admin", testToken)
	checkDashboard(t, chromium(t, bin, u, "--dump-dom"))

	// A wrong password gets no dashboard.
	u.User = url.UserPassword("admin", "wrong")
	if page := chromium(t, bin, u, "--dump-dom"); strings.Contains(page, `id="divergences"`) {
		t.Error("dashboard shown with a wrong password")
	}
}

// TestDashboardChromiumChartAndFilter renders, in Chromium, the page of a
// repo with a divergent package after some traffic: the class chart has a
// bar per class of the package, the traffic chart has hit and miss bars,
// and a filtered table shows only what the filter selects. The screenshots
// are kept as PNGs in the test's temp dir (logged), or in
// $DNFPROXY_SCREENSHOT_DIR when set, to be looked at.
func TestDashboardChromiumChartAndFilter(t *testing.T) {
	bin := testenv.RequireTool(t, "chromium")
	a := divergentAdmin(t, config.ModeAnnotate)
	for range 3 {
		a.fetch(t, "/test/el9/Packages/"+testenv.RPMLibAlma) // a miss, then hits
	}
	// One sample closed a minute ago, as the ring's ticker would have.
	a.srv.metrics.traffic.sample(time.Now().Add(-time.Minute))
	a.fetch(t, "/test/el9/Packages/"+testenv.RPMLibAlma)

	shots := t.TempDir()
	if d := os.Getenv("DNFPROXY_SCREENSHOT_DIR"); d != "" {
		shots = d
	}
	load := func(query string) string {
		u, err := url.Parse(a.admin.URL + "/" + query)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword("admin", testToken)
		png := filepath.Join(shots, fmt.Sprintf("dashboard%s.png", regexp.MustCompile(`\W+`).ReplaceAllString(query, "-")))
		chromium(t, bin, u, "--screenshot="+png, "--window-size=1400,1600")
		if fi, err := os.Stat(png); err != nil || fi.Size() < 10000 {
			t.Errorf("screenshot %s: %v (%v bytes)", png, err, fi)
		}
		t.Logf("screenshot: %s", png)
		return chromium(t, bin, u, "--dump-dom")
	}

	dom := load("")
	bar := func(class string) (float64, bool) {
		m := regexp.MustCompile(`<rect class="bar c-` + class + `"[^>]*width="([0-9.]+)"`).FindStringSubmatch(dom)
		if m == nil {
			return 0, false
		}
		w, _ := strconv.ParseFloat(m[1], 64)
		return w, true
	}
	for _, c := range []string{"abi-changed", "patched"} {
		if w, ok := bar(c); !ok || w < 100 {
			t.Errorf("class chart: %s bar width %v (present %v), want a full bar", c, w, ok)
		}
	}
	if w, ok := bar("version-differs"); !ok || w != 0 {
		t.Errorf("class chart: version-differs bar width %v (present %v), want an empty bar", w, ok)
	}
	traffic := regexp.MustCompile(`(?s)<div id="traffic-chart">.*?</svg>`).FindString(dom)
	if !regexp.MustCompile(`<rect class="hit"[^>]*height="[1-9]`).MatchString(traffic) ||
		!regexp.MustCompile(`<rect class="miss"[^>]*height="[1-9]`).MatchString(traffic) {
		t.Errorf("traffic chart has no hit and miss bars:\n%s", traffic)
	}
	bytesChart := regexp.MustCompile(`(?s)<div id="bytes-chart">.*?</svg>`).FindString(dom)
	if !regexp.MustCompile(`<polyline class="served" points="[0-9.,]+ [0-9.,]+`).MatchString(bytesChart) {
		t.Errorf("bytes chart has no served line:\n%s", bytesChart)
	}
	rows := regexp.MustCompile(`<tr class="divergence"`).FindAllString(dom, -1)
	if len(rows) != 1 || !strings.Contains(dom, "dnfpt-lib-1.0-1.el9.alma.1.noarch") {
		t.Errorf("unfiltered table: %d rows, want the one divergent package", len(rows))
	}

	// Filters: the package is abi-changed and annotated, not version-differs.
	for _, c := range []struct {
		query string
		rows  int
	}{
		{"?class=abi-changed&action=annotate&q=DNFPT-LIB", 1},
		{"?class=version-differs", 0},
		{"?q=openssl", 0},
		{"?repo=test&root=el9%2F", 1},
	} {
		dom := load(c.query)
		got := len(regexp.MustCompile(`<tr class="divergence"`).FindAllString(dom, -1))
		if got != c.rows {
			t.Errorf("%s: %d rows, want %d", c.query, got, c.rows)
		}
		if c.rows == 0 && !strings.Contains(dom, "no package matches the filters") {
			t.Errorf("%s: no empty-selection message", c.query)
		}
		if q, _ := url.ParseQuery(strings.TrimPrefix(c.query, "?")); q.Get("class") != "" &&
			!regexp.MustCompile(`<option selected="">`+q.Get("class")+`</option>`).MatchString(dom) {
			t.Errorf("%s: the class select does not keep the filter", c.query)
		}
	}
}

// TestDashboardPackagePage opens a divergent package's page: every finding
// with its full reason, and 404 for a package that does not diverge.
func TestDashboardPackagePage(t *testing.T) {
	a := divergentAdmin(t, config.ModeFilter)
	status, _, body := a.do(t, "GET", "/", "Bearer "+testToken, nil)
	if status != http.StatusOK {
		t.Fatalf("GET /: %d", status)
	}
	link := regexp.MustCompile(`<a href="(/package\?[^"]+)"><code>dnfpt-lib-1.0-1.el9.alma.1.noarch</code>`).FindStringSubmatch(string(body))
	if link == nil {
		t.Fatalf("no package link on the dashboard:\n%s", body)
	}
	// A browser opens the link with the token as the Basic password.
	status, _, body = a.do(t, "GET", strings.ReplaceAll(link[1], "&amp;", "&"), basicAuth("admin", testToken), nil)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", link[1], status, body)
	}
	page := string(body)
	findings := regexp.MustCompile(`<li class="finding">([^<]*)</li>`).FindAllStringSubmatch(page, -1)
	var got []string
	for _, f := range findings {
		got = append(got, f[1])
	}
	if len(got) != 2 || !strings.Contains(strings.Join(got, "\n"), "abi-changed — adds the DNFPT_1.1 symbol version") ||
		!strings.Contains(strings.Join(got, "\n"), "patched — ") {
		t.Errorf("findings %q, want the rule's full reason and the vendor marker", got)
	}
	if !strings.Contains(page, `<td class="filter">filter</td>`) {
		t.Error("the package page does not show the filter action")
	}
	if !regexp.MustCompile(`<td>abi-changed, patched</td>|<td>patched, abi-changed</td>`).MatchString(page) {
		t.Error("the package page does not list both classes")
	}
	for _, q := range []string{
		"/package?repo=test&path=el9/&nevra=dnfpt-app-1.0-1.el9.noarch",
		"/package?repo=nope&path=el9/&nevra=x",
	} {
		if status, _, _ := a.do(t, "GET", q, "Bearer "+testToken, nil); status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", q, status)
		}
	}
	if status, _, _ := a.do(t, "GET", "/package?repo=test&path=el9/&nevra=x", basicAuth("admin", "wrong"), nil); status != http.StatusUnauthorized {
		t.Errorf("package page with a wrong password: %d, want 401", status)
	}
}

// manyRows is a synthetic report of n packages over two repos and classes.
func manyRows(n int) []divergenceSection {
	secs := []divergenceSection{
		{Mode: "annotate", Report: view.Report{Repo: "alma", Path: "9/BaseOS/x86_64/os/"}},
		{Mode: "filter", Report: view.Report{Repo: "rocky", Path: "9/AppStream/x86_64/os/"}},
	}
	for i := range n {
		class, action := metadata.ClassPatched, metadata.ActionAnnotate
		if i%3 == 0 {
			class, action = metadata.ClassABIChanged, metadata.ActionFilter
		}
		name := fmt.Sprintf("pkg%03d", i)
		secs[i%2].Packages = append(secs[i%2].Packages, view.DivergentPackage{
			NEVRA: name + "-1.0-1.el9.x86_64", Name: name, Classes: []string{class},
			Reasons: []string{class + " — reason " + name}, Action: action,
		})
	}
	return secs
}

// TestDashboardFilterPages renders the template over 130 packages: counts
// per repo and class, 50 rows a page, filters that narrow, page links that
// keep the filters.
func TestDashboardFilterPages(t *testing.T) {
	render := func(query string) (dashboardData, string) {
		t.Helper()
		q, _ := url.ParseQuery(query)
		f, err := parseDashboardFilter(q)
		if err != nil {
			t.Fatal(err)
		}
		d := dashboardData{Now: time.Now(), Sections: manyRows(130), Filter: f}
		d.build(nil)
		var b strings.Builder
		if err := dashboardTmpl.Execute(&b, d); err != nil {
			t.Fatal(err)
		}
		return d, b.String()
	}
	rowRE := regexp.MustCompile(`<tr class="divergence" data-repo="(\w+)">.*?<code>(pkg\d+)-`)
	for _, c := range []struct {
		query     string
		rows      int
		matched   int
		pages     int
		firstName string
	}{
		{"", 50, 130, 3, "pkg000"},
		{"page=3", 30, 130, 3, "pkg071"}, // alma's 65 come first, then rocky's
		{"page=9", 30, 130, 3, "pkg071"}, // past the end: the last page
		{"repo=rocky", 50, 65, 2, "pkg001"},
		{"repo=rocky&page=2", 15, 65, 2, "pkg101"},
		{"class=abi-changed", 44, 44, 1, "pkg000"},
		{"class=abi-changed&action=annotate", 0, 0, 1, ""},
		{"action=filter&repo=alma", 22, 22, 1, "pkg000"},
		{"q=PKG12", 10, 10, 1, "pkg120"},
		{"root=9%2FAppStream%2Fx86_64%2Fos%2F&q=pkg00", 5, 5, 1, "pkg001"},
	} {
		d, page := render(c.query)
		rows := rowRE.FindAllStringSubmatch(page, -1)
		if len(rows) != c.rows || d.Matched != c.matched || d.Page.Of != c.pages {
			t.Errorf("%q: %d rows, %d matched, %d pages; want %d, %d, %d", c.query, len(rows), d.Matched, d.Page.Of, c.rows, c.matched, c.pages)
			continue
		}
		if c.rows > 0 && rows[0][2] != c.firstName {
			t.Errorf("%q: first row %s, want %s", c.query, rows[0][2], c.firstName)
		}
		if c.rows == 0 && !strings.Contains(page, "no package matches the filters") {
			t.Errorf("%q: no empty-selection message", c.query)
		}
	}

	d, page := render("class=patched")
	// Counts at the top ignore the filter: alma has 65 = 22 abi-changed + 43 patched.
	if !regexp.MustCompile(`<tr class="count" data-repo="alma">.*<td class="num"><a href="/\?class=abi-changed&amp;repo=alma">22</a></td><td class="num"><span class="muted">0</span></td><td class="num"><a href="/\?class=patched&amp;repo=alma">43</a></td>.*<strong>65</strong>`).MatchString(page) {
		t.Errorf("no alma count row with 22 abi-changed, 43 patched, 65 in all:\n%s", page)
	}
	if d.Total.Total != 130 || d.Matched != 86 {
		t.Errorf("total %d, matched %d; want 130 and 86", d.Total.Total, d.Matched)
	}
	// The page links keep the filter.
	if d.Page.Next != "/?class=patched&page=2" || d.Page.Prev != "" {
		t.Errorf("next %q prev %q", d.Page.Next, d.Page.Prev)
	}
	if !strings.Contains(page, `<a rel="next" href="/?class=patched&amp;page=2#packages">`) {
		t.Error("no next link keeping the filter")
	}
	d, _ = render("class=patched&repo=rocky&page=1")
	if d.Page.Next != "" {
		t.Errorf("rocky patched (43 rows): next %q, want none", d.Page.Next)
	}
	// The class chart shows the class distribution of the selection
	// (rocky: 22 abi-changed, 43 patched), the class filter aside.
	if got := d.ClassChart.Labels[1].Text + "/" + d.ClassChart.Labels[5].Text; got != "22/43" {
		t.Errorf("class chart counts %s, want 22/43", got)
	}
}

// TestDashboardDivergenceRows renders a row as the rewriter produces it:
// the reasons escaped, the first shown and the others counted.
func TestDashboardDivergenceRows(t *testing.T) {
	d := dashboardData{
		Now: time.Now(),
		Sections: []divergenceSection{{
			Mode: "annotate",
			Report: view.Report{Repo: "alma", Path: "9/os/", Reference: "rhel", Packages: []view.DivergentPackage{{
				NEVRA: "dnfpt-lib-1.0-1.el9.alma.1.noarch", Classes: []string{"patched", "abi-changed"},
				Reasons: []string{"<b>soname</b> changed", "vendor release marker .alma.1"}, Action: "annotate",
			}}},
		}},
	}
	d.build(nil)
	var buf strings.Builder
	if err := dashboardTmpl.Execute(&buf, d); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	row := regexp.MustCompile(`<tr class="divergence" data-repo="alma"><td>alma</td><td><code>/9/os/</code></td><td><a href="/package\?nevra=dnfpt-lib-1.0-1.el9.alma.1.noarch&amp;path=9%2Fos%2F&amp;repo=alma"><code>dnfpt-lib-1.0-1.el9.alma.1.noarch</code></a></td><td>patched, abi-changed</td><td>annotate</td><td>&lt;b&gt;soname&lt;/b&gt; changed <span class="muted">\(\+1 more\)</span></td></tr>`)
	if !row.MatchString(page) {
		t.Errorf("no divergence row (reasons escaped) in:\n%s", page)
	}
	if strings.Contains(page, "no divergences known") {
		t.Error(`"no divergences known" shown beside a divergence`)
	}
	if strings.Contains(page, "stablelist-breaks") {
		t.Error("kABI stablelist breaks shown for a root without any")
	}
}

// TestDashboardStablelistBreaks names a root's kABI stablelist breaks (the
// report's stablelist_breaks) above the tables: each symbol once, the
// first 12, and how many more.
func TestDashboardStablelistBreaks(t *testing.T) {
	many := []string{"zap", "printk"}
	for i := range 14 {
		many = append(many, fmt.Sprintf("sym%02d", i))
	}
	for _, tc := range []struct {
		name   string
		breaks []string
		want   string
	}{
		{"one", []string{"printk", "printk"}, `<p class="bad stablelist-breaks" data-repo="alma">alma /9/os/: 1 kABI stablelist symbol changed CRC against rhel (third-party kernel modules built for it may not load): <code>printk</code></p>`},
		{"two", []string{"printk", "kmalloc"}, `2 kABI stablelist symbols changed CRC against rhel (third-party kernel modules built for it may not load): <code>kmalloc</code>, <code>printk</code></p>`},
		{"many", many, `16 kABI stablelist symbols changed CRC against rhel (third-party kernel modules built for it may not load): <code>printk</code>, <code>sym00</code>, <code>sym01</code>, <code>sym02</code>, <code>sym03</code>, <code>sym04</code>, <code>sym05</code>, <code>sym06</code>, <code>sym07</code>, <code>sym08</code>, <code>sym09</code>, <code>sym10</code> <span class="muted">and 4 more</span></p>`},
		{"escaped", []string{"<b>x</b>"}, `<code>&lt;b&gt;x&lt;/b&gt;</code></p>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := dashboardData{Now: time.Now(), Sections: []divergenceSection{{Mode: "annotate",
				Report: view.Report{Repo: "alma", Path: "9/os/", Reference: "rhel", StablelistBreaks: tc.breaks}}}}
			d.build(nil)
			var buf strings.Builder
			if err := dashboardTmpl.Execute(&buf, d); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(buf.String(), tc.want) {
				t.Errorf("no %q in:\n%s", tc.want, buf.String())
			}
		})
	}
}

// TestDashboardRootHealth shows a failing root in red with its view's error.
func TestDashboardRootHealth(t *testing.T) {
	now := time.Now()
	old := now.Add(-3 * time.Hour)
	d := dashboardData{Now: now, Repos: []RepoStatus{{Name: "alma", Compat: CompatStatus{Mode: "annotate"}, Roots: []RootStatus{
		{Path: "9/a/", Revision: "1700000000", Fetched: &old, AgeSeconds: 3 * 3600, Stale: true},
		{Path: "9/b/", Revision: "1700000001", Fetched: &old, RefreshFailing: true, LastError: "upstream: 503",
			Views: []ViewStatus{{View: "annotate", Created: &old, LastError: "primary.xml: bad", LastErrorAt: &now}}},
		{Path: "9/c/", Revision: "1700000002", Fetched: &now, Views: []ViewStatus{{View: "annotate", Created: &old}}},
	}}}}
	d.build(nil)
	var buf strings.Builder
	if err := dashboardTmpl.Execute(&buf, d); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{
		`<code>/alma/9/a/</code></td><td class="health stale">stale</td>`,
		`<code>/alma/9/b/</code></td><td class="health bad">failing</td>`,
		`<code>/alma/9/c/</code></td><td class="health ok">fresh</td>`,
		`<div class="view bad">annotate: build failed at `,
		`<div class="view ok">annotate: built 3h00m ago</div>`,
		`<td class="bad">upstream: 503</td>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("no %q in the repos table", want)
		}
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
	for _, path := range []string{"/", "/api/v1/repos", "/?class=patched&q=x"} {
		if status, _, body := a.do(t, "GET", path, "Bearer "+testToken, nil); status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, status, body)
		}
	}
	if after := up.TotalHits(); after != before {
		t.Fatalf("loading the dashboard and the repo list sent %d requests upstream", after-before)
	}
}

// TestTrafficRing feeds the ring per-minute samples over more than its
// window: it keeps the last six hours, oldest first, and the minute in
// progress.
func TestTrafficRing(t *testing.T) {
	var cur trafficCounts
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newTraffic(func() trafficCounts { return cur }, start)
	for i := 1; i <= trafficMinutes+30; i++ {
		cur.Hits += int64(i)
		cur.Misses++
		cur.Served += 1000
		r.sample(start.Add(time.Duration(i) * time.Minute))
	}
	cur.Hits += 7
	now := start.Add(time.Duration(trafficMinutes+30)*time.Minute + 20*time.Second)
	got := r.samples(now)
	if len(got) != trafficMinutes+1 {
		t.Fatalf("%d samples, want %d", len(got), trafficMinutes+1)
	}
	first, last := got[0], got[len(got)-2]
	if first.Hits != 31 || last.Hits != int64(trafficMinutes+30) || first.Misses != 1 || first.Served != 1000 {
		t.Errorf("first %+v last %+v: want the growth of minutes 31 and %d", first, last, trafficMinutes+30)
	}
	if p := got[len(got)-1]; p.Hits != 7 || p.Misses != 0 || !p.End.Equal(now) {
		t.Errorf("minute in progress %+v, want 7 hits", p)
	}
	// Samples older than the window drop out even before the ring wraps.
	r2 := newTraffic(func() trafficCounts { return cur }, start)
	r2.sample(start.Add(time.Minute))
	if got := r2.samples(start.Add(7 * time.Hour)); len(got) != 1 {
		t.Errorf("%d samples seven hours later, want only the minute in progress", len(got))
	}
}

// repoKeys returns the key=value lines of a .repo text (comments out).
func repoKeys(text string) map[string]string {
	kv := map[string]string{}
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			kv[k] = v
		}
	}
	return kv
}

// TestAdminRepofile asks the admin API and the dashboard for the .repo
// stanza of a root, checks it, and gives it to the real dnf.
func TestAdminRepofile(t *testing.T) {
	a := divergentAdmin(t, config.ModeAnnotate)
	get := func(path, auth string, want int) string {
		t.Helper()
		status, hdr, body := a.do(t, "GET", path, auth, nil)
		if status != want {
			t.Fatalf("GET %s: %d %s, want %d", path, status, body, want)
		}
		if want == http.StatusOK && !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
			t.Errorf("GET %s: Content-Type %q", path, hdr.Get("Content-Type"))
		}
		return string(body)
	}
	bearer := "Bearer " + testToken
	own := get("/api/v1/repos/test/repofile?path=el9&gpgcheck=0&name=t-own", bearer, http.StatusOK)
	kv := repoKeys(own)
	base := a.http.URL + "/test/el9/"
	if kv["baseurl"] != base || kv["repo_gpgcheck"] != "1" || kv["gpgkey"] != base+"repodata/repomd.xml.key" || kv["gpgcheck"] != "0" {
		t.Errorf("the repo's own view (annotate) stanza:\n%s", own)
	}
	if !strings.Contains(own, "[t-own]\n") || !strings.Contains(own, "which rewrites metadata") {
		t.Errorf("stanza without its id or view note:\n%s", own)
	}
	raw := get("/api/v1/repos/test/repofile?path=/el9/&view=raw&gpgcheck=0&name=t-raw", bearer, http.StatusOK)
	if kv := repoKeys(raw); kv["baseurl"] != a.http.URL+"/test@raw/el9/" || kv["repo_gpgcheck"] != "" {
		t.Errorf("raw stanza:\n%s", raw)
	}
	proxied := get("/api/v1/repos/test/repofile?path=el9&proxy=https://dnfproxy.example:8443", bearer, http.StatusOK)
	if kv := repoKeys(proxied); kv["baseurl"] != "https://dnfproxy.example:8443/test/el9/" || kv["gpgcheck"] != "1" {
		t.Errorf("stanza for another proxy URL:\n%s", proxied)
	}
	// The dashboard's link gives the same text to a browser.
	if page := get("/repofile?repo=test&path=el9/&gpgcheck=0&name=t-own", basicAuth("admin", testToken), http.StatusOK); page != own {
		t.Errorf("dashboard repofile differs from the API's:\n%s\n%s", page, own)
	}
	for _, c := range []struct {
		path string
		want int
	}{
		{"/api/v1/repos/nope/repofile?path=el9", http.StatusNotFound},
		{"/api/v1/repos/test/repofile?path=el8", http.StatusNotFound}, // no such root known
		{"/api/v1/repos/test/repofile?path=el9&view=filtered", http.StatusBadRequest},
		{"/api/v1/repos/test/repofile?path=el9&name=a%20b", http.StatusBadRequest},
		{"/api/v1/repos/test/repofile?path=../x", http.StatusBadRequest},
		{"/api/v1/repos/test/repofile?path=el9&proxy=ftp://x", http.StatusBadRequest},
	} {
		get(c.path, bearer, c.want)
	}
	get("/api/v1/repos/test/repofile?path=el9", basicAuth("admin", testToken), http.StatusUnauthorized)

	// The stanzas work with dnf: the annotate view's signed repomd.xml
	// verifies with the key the stanza names, and the annotation shows.
	d := testenv.NewDNF(t, nil)
	reposd := filepath.Join(filepath.Dir(d.ConfigPath()), "repos.d")
	for id, text := range map[string]string{"t-own": own, "t-raw": raw} {
		if err := os.WriteFile(filepath.Join(reposd, id+".repo"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d.MakeCache()
	got := d.RepoQuery("--repo", "t-own", "--whatprovides", "abi-divergence(rhel)")
	if len(got) != 1 || !strings.HasPrefix(got[0], "dnfpt-lib-") {
		t.Errorf("through the annotate stanza, abi-divergence(rhel) is provided by %q, want dnfpt-lib", got)
	}
	if got := d.RepoQuery("--repo", "t-raw", "--whatprovides", "abi-divergence(rhel)"); len(got) != 0 {
		t.Errorf("through the raw stanza, abi-divergence(rhel) is provided by %q, want none", got)
	}
}
