package proxy

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The dashboard's charts are inline SVG computed here: the template only
// places the shapes, so the page needs no script and no external file.

const (
	chartW      = 720.0 // the plot's width in SVG units
	chartH      = 140.0 // its height
	chartLeft   = 70.0  // room for the value labels
	chartBottom = 20.0  // room for the time labels
)

// svgRect is one bar; Title is its tooltip.
type svgRect struct {
	X, Y, W, H float64
	Class      string
	Title      string
	URL        string // a link around the bar, "" for none
}

// svgText is a label.
type svgText struct {
	X, Y   float64
	Anchor string // start | middle | end
	Text   string
}

// svgLine is a polyline.
type svgLine struct {
	Class  string
	Points string
}

// barChart is the horizontal bar chart of divergent packages per class.
type barChart struct {
	W, H   float64
	Bars   []svgRect
	Labels []svgText
	Empty  bool
}

func classChart(classes []string, counts []int, f dashboardFilter) barChart {
	const rowH, barMax, labelW = 24.0, 420.0, 140.0
	c := barChart{W: labelW + barMax + 80, H: rowH*float64(len(classes)) + 8, Empty: true}
	top := 1
	for _, n := range counts {
		top = max(top, n)
		if n > 0 {
			c.Empty = false
		}
	}
	for i, class := range classes {
		y := 4 + rowH*float64(i)
		w := barMax * float64(counts[i]) / float64(top)
		if counts[i] > 0 {
			w = max(w, 2)
		}
		g := f
		g.Class, g.Page = class, 1
		c.Bars = append(c.Bars, svgRect{X: labelW, Y: y + 3, W: w, H: rowH - 8, Class: "c-" + class,
			Title: fmt.Sprintf("%s: %d packages", class, counts[i]), URL: filterURL(flatten(g.values())...)})
		c.Labels = append(c.Labels,
			svgText{X: labelW - 8, Y: y + rowH/2 + 4, Anchor: "end", Text: class},
			svgText{X: labelW + w + 6, Y: y + rowH/2 + 4, Anchor: "start", Text: strconv.Itoa(counts[i])})
	}
	return c
}

// flatten turns single-valued query parameters into key, value pairs.
func flatten(v map[string][]string) []string {
	var kv []string
	for k, vs := range v {
		kv = append(kv, k, vs[0])
	}
	return kv
}

// timeChart is a chart over the traffic window: stacked bars or lines, one
// slot per minute.
type timeChart struct {
	W, H    float64
	PlotX   float64
	PlotW   float64
	PlotH   float64
	Bars    []svgRect
	Lines   []svgLine
	Labels  []svgText
	Samples int
	Max     string // the top of the value axis, formatted
}

// trafficCharts draws the requests (hits and misses stacked) and the bytes
// (served to clients, fetched from upstream) per minute over the window.
func trafficCharts(now time.Time, samples []trafficSample) (requests, bytes timeChart) {
	slot := chartW / float64(trafficMinutes+1)
	start := now.Add(-trafficWindow)
	x := func(t time.Time) float64 {
		return chartLeft + chartW*float64(t.Sub(start))/float64(trafficWindow+time.Minute)
	}
	frame := func() timeChart {
		c := timeChart{W: chartLeft + chartW + 10, H: chartH + chartBottom + 4, PlotX: chartLeft, PlotW: chartW,
			PlotH: chartH, Samples: len(samples)}
		for h := 6; h >= 0; h-- {
			t := now.Add(-time.Duration(h) * time.Hour)
			label := "now"
			if h > 0 {
				label = fmt.Sprintf("-%dh", h)
			}
			c.Labels = append(c.Labels, svgText{X: x(t), Y: chartH + 15, Anchor: "middle", Text: label})
		}
		return c
	}
	requests, bytes = frame(), frame()

	var topReq, topBytes int64 = 1, 1
	for _, s := range samples {
		topReq = max(topReq, s.Hits+s.Misses)
		topBytes = max(topBytes, s.Served, s.Upstream)
	}
	h := func(v, top int64) float64 { return chartH * float64(v) / float64(top) }
	var served, fetched []string
	for _, s := range samples {
		x0 := x(s.End) - slot
		at := s.End.Format("15:04")
		if hh := h(s.Misses, topReq); s.Misses > 0 {
			requests.Bars = append(requests.Bars, svgRect{X: x0, Y: chartH - hh, W: slot, H: hh, Class: "miss",
				Title: fmt.Sprintf("%s: %d misses", at, s.Misses)})
		}
		if hh, base := h(s.Hits, topReq), h(s.Misses, topReq); s.Hits > 0 {
			requests.Bars = append(requests.Bars, svgRect{X: x0, Y: chartH - base - hh, W: slot, H: hh, Class: "hit",
				Title: fmt.Sprintf("%s: %d hits", at, s.Hits)})
		}
		mid := x0 + slot/2
		served = append(served, fmt.Sprintf("%.1f,%.1f", mid, chartH-h(s.Served, topBytes)))
		fetched = append(fetched, fmt.Sprintf("%.1f,%.1f", mid, chartH-h(s.Upstream, topBytes)))
	}
	bytes.Lines = []svgLine{{Class: "served", Points: strings.Join(served, " ")},
		{Class: "upstream", Points: strings.Join(fetched, " ")}}
	requests.Max = fmt.Sprintf("%d/min", topReq)
	bytes.Max = humanBytes(topBytes) + "/min"
	return requests, bytes
}
