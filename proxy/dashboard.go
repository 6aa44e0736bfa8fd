package proxy

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/view"
)

//go:embed templates/dashboard.html
var templateFS embed.FS

var dashboardTmpl = template.Must(template.New("dashboard.html").Funcs(template.FuncMap{
	"bytes":   humanBytes,
	"age":     humanAge,
	"join":    strings.Join,
	"percent": func(n, of int64) string { return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of)) },
}).ParseFS(templateFS, "templates/dashboard.html"))

// dashboardData is what the dashboard template renders.
type dashboardData struct {
	Now         time.Time
	Repos       []RepoStatus
	Cache       CacheStats
	Divergences []divergenceSection
}

// divergenceSection is the divergence report of one root of a repo whose
// compat mode is not off.
type divergenceSection struct {
	view.Report
	Mode  string
	Error string
}

// dashboard serves the HTML dashboard: the information of the JSON API on
// one server-rendered page, without scripts.
func (s *Server) dashboard(c *gin.Context) {
	ctx := c.Request.Context()
	data := dashboardData{
		Now:   time.Now(),
		Repos: s.repoStatuses(),
		Cache: s.cacheStats(),
	}
	for _, r := range data.Repos {
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
			// Nothing fetched yet: the page does not go upstream.
			data.Divergences = append(data.Divergences, divergenceSection{
				Report: view.Report{Repo: r.Name, Reference: r.Compat.Reference},
				Mode:   r.Compat.Mode,
			})
			continue
		}
		for _, root := range roots {
			sec := divergenceSection{Mode: r.Compat.Mode}
			rep, err := s.views.Report(ctx, r.Name, root, false) // never upstream
			if err != nil {
				rep = view.Report{Repo: r.Name, Path: root, Reference: r.Compat.Reference}
				sec.Error = err.Error()
			}
			sec.Report = rep
			data.Divergences = append(data.Divergences, sec)
		}
	}
	var buf bytes.Buffer
	if err := dashboardTmpl.Execute(&buf, data); err != nil {
		s.log.Error("dashboard template", "err", err)
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
