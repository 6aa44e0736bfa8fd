package proxy

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/view"
	"github.com/dnfproxy/dnfproxy/metadata"
)

//go:embed templates/*.html
var templateFS embed.FS

var dashboardFuncs = template.FuncMap{
	"bytes":   humanBytes,
	"age":     humanAge,
	"since":   func(now time.Time, t *time.Time) string { return humanAge(now.Sub(*t).Seconds()) },
	"join":    strings.Join,
	"percent": func(n, of int64) string { return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of)) },
	"filter":  filterURL,
	"pkgURL": func(repo, root, nevra string) string {
		return "/package?" + url.Values{"repo": {repo}, "path": {root}, "nevra": {nevra}}.Encode()
	},
	"repofileURL": func(repo, root string) string {
		return "/repofile?" + url.Values{"repo": {repo}, "path": {root}}.Encode()
	},
}

var (
	dashboardTmpl = template.Must(template.New("dashboard.html").Funcs(dashboardFuncs).
			ParseFS(templateFS, "templates/dashboard.html", "templates/chart.html"))
	packageTmpl = template.Must(template.New("package.html").Funcs(dashboardFuncs).
			ParseFS(templateFS, "templates/package.html"))
)

// dashboardPageSize is the number of divergence rows per page.
const dashboardPageSize = 50

// classOrder is the fixed vocabulary, in the order the page shows it.
var classOrder = []string{metadata.ClassABIChanged, metadata.ClassABIExtended, metadata.ClassPatched,
	metadata.ClassVersionDiffers, metadata.ClassNotInReference}

var actionOrder = []string{string(metadata.ActionFilter), string(metadata.ActionAnnotate), string(metadata.ActionNone)}

// dashboardData is what the dashboard template renders.
type dashboardData struct {
	Now   time.Time
	Repos []RepoStatus
	Cache CacheStats

	// Sections are the analysed roots (repos whose compat mode is not off).
	Sections []divergenceSection
	Counts   []countRow // per repo, over its analysed roots
	Classes  []string   // the columns of Counts
	Total    countRow

	Filter  dashboardFilter
	Options filterOptions
	Rows    []divergenceRow // the current page
	Matched int             // rows matching the filter, over all pages
	All     int             // rows before filtering
	Page    pageLinks

	ClassChart   barChart
	TrafficChart timeChart
	BytesChart   timeChart
}

// divergenceSection is the divergence report of one root of a repo whose
// compat mode is not off.
type divergenceSection struct {
	view.Report
	Mode  string
	Error string
}

// maxBreaksShown is how many kABI stablelist breaks a section names; the
// JSON report has all of them.
const maxBreaksShown = 12

// stablelistBreaks is what the page says of a root's kABI stablelist
// breaks.
type stablelistBreaks struct {
	Repo, Path, Reference string
	Count                 int
	Shown                 []string
	More                  int
}

// Breaks returns the root's stablelist breaks (sorted, each once), or nil
// when there are none.
func (s divergenceSection) Breaks() *stablelistBreaks {
	if len(s.StablelistBreaks) == 0 {
		return nil
	}
	syms := slices.Clone(s.StablelistBreaks)
	slices.Sort(syms)
	syms = slices.Compact(syms)
	b := &stablelistBreaks{Repo: s.Repo, Path: s.Path, Reference: s.Reference, Count: len(syms), Shown: syms}
	if len(syms) > maxBreaksShown {
		b.Shown, b.More = syms[:maxBreaksShown], len(syms)-maxBreaksShown
	}
	return b
}

// divergenceRow is one package of one root.
type divergenceRow struct {
	Repo, Root string
	view.DivergentPackage
}

// countRow counts the divergent packages of a repo by class.
type countRow struct {
	Repo, Mode, Reference string
	ByClass               []int // in the order of dashboardData.Classes
	Total                 int
}

type filterOptions struct{ Repos, Roots, Classes, Actions []string }

// dashboardFilter is the query of the dashboard: every field narrows the
// divergence table; Q is a case-insensitive substring of the package name
// or NEVRA.
type dashboardFilter struct {
	Repo, Root, Class, Action, Q string
	Page                         int
}

func parseDashboardFilter(q url.Values) (dashboardFilter, error) {
	f := dashboardFilter{Repo: q.Get("repo"), Root: q.Get("root"), Class: q.Get("class"),
		Action: q.Get("action"), Q: strings.TrimSpace(q.Get("q")), Page: 1}
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return f, fmt.Errorf("page %q: want a page number from 1", p)
		}
		f.Page = n
	}
	if f.Action != "" && !slices.Contains(actionOrder, f.Action) {
		return f, fmt.Errorf("action %q: want one of %s", f.Action, strings.Join(actionOrder, ", "))
	}
	return f, nil
}

// values returns the filter as query parameters, without the page.
func (f dashboardFilter) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"repo": f.Repo, "root": f.Root, "class": f.Class, "action": f.Action, "q": f.Q} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// Active reports whether any filter is set.
func (f dashboardFilter) Active() bool { return len(f.values()) > 0 }

// match reports whether a row passes the filter; withClass false ignores
// the class (the class chart shows the distribution of the selection).
func (f dashboardFilter) match(r divergenceRow, withClass bool) bool {
	switch {
	case f.Repo != "" && r.Repo != f.Repo,
		f.Root != "" && r.Root != f.Root,
		f.Action != "" && string(r.Action) != f.Action,
		withClass && f.Class != "" && !slices.Contains(r.Classes, f.Class):
		return false
	case f.Q != "":
		q := strings.ToLower(f.Q)
		return strings.Contains(strings.ToLower(r.Name), q) || strings.Contains(strings.ToLower(r.NEVRA), q)
	}
	return true
}

// filterURL builds a dashboard link from key, value pairs.
func filterURL(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v.Set(kv[i], kv[i+1])
		}
	}
	if len(v) == 0 {
		return "/"
	}
	return "/?" + v.Encode()
}

// pageLinks is the pagination of the divergence table.
type pageLinks struct {
	Number, Of int
	From, To   int // 1-based rows shown
	Prev, Next string
	Pages      []pageLink
}

type pageLink struct {
	N       int
	URL     string
	Current bool
}

func paginate(f dashboardFilter, total int) pageLinks {
	pages := max(1, (total+dashboardPageSize-1)/dashboardPageSize)
	n := max(1, min(f.Page, pages))
	p := pageLinks{Number: n, Of: pages}
	if total > 0 {
		p.From = (n-1)*dashboardPageSize + 1
		p.To = min(total, n*dashboardPageSize)
	}
	link := func(i int) string {
		v := f.values()
		if i > 1 {
			v.Set("page", strconv.Itoa(i))
		}
		if len(v) == 0 {
			return "/"
		}
		return "/?" + v.Encode()
	}
	if n > 1 {
		p.Prev = link(n - 1)
	}
	if n < pages {
		p.Next = link(n + 1)
	}
	// The first, the last and the pages around the current one.
	for i := 1; i <= pages; i++ {
		if i == 1 || i == pages || (i >= n-3 && i <= n+3) {
			p.Pages = append(p.Pages, pageLink{N: i, URL: link(i), Current: i == n})
		}
	}
	return p
}

// sections returns the divergence reports of every analysed root, from
// what the proxy has (never upstream).
func (s *Server) sections(c *gin.Context, repos []RepoStatus) []divergenceSection {
	var out []divergenceSection
	for _, r := range repos {
		if r.Compat.Mode == string(config.ModeOff) {
			continue
		}
		var roots []string
		for _, rs := range r.Roots {
			if rs.Revision != "" {
				roots = append(roots, rs.Path)
			}
		}
		if len(roots) == 0 {
			out = append(out, divergenceSection{
				Report: view.Report{Repo: r.Name, Reference: r.Compat.Reference},
				Mode:   r.Compat.Mode,
			})
			continue
		}
		for _, root := range roots {
			sec := divergenceSection{Mode: r.Compat.Mode}
			rep, err := s.views.Report(c.Request.Context(), r.Name, root, false) // never upstream
			if err != nil {
				rep = view.Report{Repo: r.Name, Path: root, Reference: r.Compat.Reference}
				sec.Error = err.Error()
			}
			sec.Report = rep
			out = append(out, sec)
		}
	}
	return out
}

// dashboard serves the HTML dashboard: the information of the JSON API on
// one server-rendered page, without scripts; the divergence table is
// filtered and paged by query parameters.
func (s *Server) dashboard(c *gin.Context) {
	f, err := parseDashboardFilter(c.Request.URL.Query())
	if err != nil {
		c.String(http.StatusBadRequest, "%v\n", err)
		return
	}
	now := time.Now()
	data := dashboardData{Now: now, Repos: s.repoStatuses(), Cache: s.cacheStats(), Filter: f}
	data.Sections = s.sections(c, data.Repos)
	data.build(s.metrics.trafficSamples(now))
	renderPage(c, s, dashboardTmpl, data)
}

// build derives the counts, the filtered page and the charts from the
// sections.
func (d *dashboardData) build(samples []trafficSample) {
	var all []divergenceRow
	seenClass := map[string]bool{}
	for _, sec := range d.Sections {
		for _, p := range sec.Packages {
			all = append(all, divergenceRow{Repo: sec.Repo, Root: sec.Path, DivergentPackage: p})
			for _, c := range p.Classes {
				seenClass[c] = true
			}
		}
	}
	d.Classes = slices.Clone(classOrder)
	for c := range seenClass {
		if !slices.Contains(d.Classes, c) {
			d.Classes = append(d.Classes, c)
		}
	}
	slices.Sort(d.Classes[len(classOrder):])
	d.All = len(all)

	// Counts per repo and class, over all roots.
	byRepo := map[string]int{}
	d.Total = countRow{Repo: "all", ByClass: make([]int, len(d.Classes))}
	for _, sec := range d.Sections {
		if _, ok := byRepo[sec.Repo]; !ok {
			byRepo[sec.Repo] = len(d.Counts)
			d.Counts = append(d.Counts, countRow{Repo: sec.Repo, Mode: sec.Mode, Reference: sec.Reference,
				ByClass: make([]int, len(d.Classes))})
			d.Options.Repos = append(d.Options.Repos, sec.Repo)
		}
		if sec.Path != "" && !slices.Contains(d.Options.Roots, sec.Path) {
			d.Options.Roots = append(d.Options.Roots, sec.Path)
		}
	}
	for _, r := range all {
		cr := &d.Counts[byRepo[r.Repo]]
		cr.Total++
		d.Total.Total++
		for i, c := range d.Classes {
			if slices.Contains(r.Classes, c) {
				cr.ByClass[i]++
				d.Total.ByClass[i]++
			}
		}
	}
	slices.Sort(d.Options.Roots)
	d.Options.Classes, d.Options.Actions = d.Classes, actionOrder

	// The filtered table and the class chart of the selection.
	var matched []divergenceRow
	perClass := make([]int, len(d.Classes))
	for _, r := range all {
		if d.Filter.match(r, false) {
			for i, c := range d.Classes {
				if slices.Contains(r.Classes, c) {
					perClass[i]++
				}
			}
		}
		if d.Filter.match(r, true) {
			matched = append(matched, r)
		}
	}
	d.Matched = len(matched)
	d.Page = paginate(d.Filter, len(matched))
	if d.Page.From > 0 {
		d.Rows = matched[d.Page.From-1 : d.Page.To]
	}
	d.ClassChart = classChart(d.Classes, perClass, d.Filter)
	d.TrafficChart, d.BytesChart = trafficCharts(d.Now, samples)
}

// packageData is what the package page renders.
type packageData struct {
	Now      time.Time
	Repo     string
	Root     string
	Mode     string
	Ref      string
	Package  view.DivergentPackage
	Affected []view.AffectedPackage // kept packages that needed this one
}

// dashboardPackage serves the page of one divergent package of a root:
// every finding with its full reason, and in filter mode the packages left
// without a provider.
func (s *Server) dashboardPackage(c *gin.Context) {
	name, nevra := c.Query("repo"), c.Query("nevra")
	re, ok := s.repos[name]
	if !ok {
		c.String(http.StatusNotFound, "no repo %q\n", name)
		return
	}
	root, err := rootParam(name, c.Query("path"))
	if err != nil {
		c.String(statusOf(err), "%s\n", publicMessage(statusOf(err), err))
		return
	}
	rep, err := s.views.Report(c.Request.Context(), name, root, false)
	if err != nil {
		c.String(statusOf(err), "%s\n", publicMessage(statusOf(err), err))
		return
	}
	i := slices.IndexFunc(rep.Packages, func(p view.DivergentPackage) bool { return p.NEVRA == nevra })
	if i < 0 {
		c.String(http.StatusNotFound, "no divergent package %q in %s/%s\n", nevra, name, root)
		return
	}
	data := packageData{Now: time.Now(), Repo: name, Root: root, Mode: string(re.cfg.Compat.Mode),
		Ref: rep.Reference, Package: rep.Packages[i]}
	if data.Mode == "" {
		data.Mode = string(config.ModeOff)
	}
	for _, a := range rep.Affected {
		if slices.Contains(a.Filtered, nevra) {
			data.Affected = append(data.Affected, a)
		}
	}
	renderPage(c, s, packageTmpl, data)
}

func renderPage(c *gin.Context, s *Server, t *template.Template, data any) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		s.log.Error("dashboard template", "template", t.Name(), "err", err)
		c.String(http.StatusInternalServerError, "internal error\n")
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Header("X-Frame-Options", "DENY")
	c.Header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	c.Data(http.StatusOK, "text/html; charset=utf-8", buf.Bytes())
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func humanAge(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
