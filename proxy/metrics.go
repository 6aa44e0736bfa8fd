package proxy

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dnfproxy/dnfproxy/cache"
)

// resultError labels a request that ended in an error answer or an aborted
// transfer; the other results are those of the access log.
const resultError = "error"

// metrics are the Prometheus metrics of one Server, on their own registry
// (never the global one, so two Servers in one process do not collide).
// Every method is safe on a nil *metrics, for Servers built without New.
type metrics struct {
	reg *prometheus.Registry

	requests      *prometheus.CounterVec
	reqDuration   *prometheus.HistogramVec
	servedBytes   *prometheus.CounterVec
	upstreamBytes *prometheus.CounterVec
	fillDuration  *prometheus.HistogramVec
	evictions     prometheus.Counter
	evictedBytes  prometheus.Counter
	upstreamErrs  *prometheus.CounterVec
	viewBuilds    *prometheus.CounterVec
	viewFailures  *prometheus.CounterVec

	// served counts the body bytes sent to clients over all repos, for
	// the dashboard's traffic samples.
	served  atomic.Int64
	traffic *traffic

	byRequest    sync.Map // reqKey -> *reqSeries
	servedByRepo sync.Map // repo -> its dnfproxy_served_bytes_total
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dnfproxy_requests_total",
			Help: "Client requests by repo, result (hit, miss, stale, pass, error) and HTTP status code.",
		}, []string{"repo", "result", "code"}),
		reqDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dnfproxy_request_duration_seconds",
			Help:    "Duration of client requests, from the first byte read to the last byte written, by repo and result.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"repo", "result"}),
		servedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dnfproxy_served_bytes_total",
			Help: "Response body bytes sent to clients.",
		}, []string{"repo"}),
		upstreamBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dnfproxy_upstream_bytes_total",
			Help: "Bytes fetched from upstream into the cache.",
		}, []string{"repo"}),
		fillDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dnfproxy_fill_duration_seconds",
			Help:    "Duration of successful cache fills from upstream.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"repo"}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dnfproxy_evictions_total",
			Help: "Objects evicted from the cache to stay under storage.max_size.",
		}),
		evictedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dnfproxy_evicted_bytes_total",
			Help: "Bytes of the objects evicted from the cache.",
		}),
		viewBuilds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dnfproxy_view_builds_total",
			Help: "Rewritten views built, by repo and view.",
		}, []string{"repo", "view"}),
		viewFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dnfproxy_view_build_failures_total",
			Help: "View builds that failed (the last good view, or raw, stays in service), by repo and view.",
		}, []string{"repo", "view"}),
		upstreamErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dnfproxy_upstream_errors_total",
			Help: "Upstream failures (connection errors, timeouts, 5xx) by repo and mirror base URL.",
		}, []string{"repo", "mirror"}),
	}
	m.reg.MustRegister(m.requests, m.reqDuration, m.servedBytes, m.upstreamBytes, m.fillDuration,
		m.evictions, m.evictedBytes, m.upstreamErrs, m.viewBuilds, m.viewFailures,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&scrapeCollector{s: s})
	m.traffic = newTraffic(func() trafficCounts {
		return trafficCounts{
			Hits: s.stats.hits.Load(), Misses: s.stats.misses.Load(),
			Served: m.served.Load(), Upstream: s.stats.upstreamBytes.Load(),
		}
	}, time.Now())
	if s.baseCtx != nil {
		go m.traffic.run(s.baseCtx)
	}
	return m
}

// trafficSamples returns the per-minute traffic of the last hours, oldest
// first; nil for Servers built without New.
func (m *metrics) trafficSamples(now time.Time) []trafficSample {
	if m == nil {
		return nil
	}
	return m.traffic.samples(now)
}

// handler serves the registry in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// observeRequest counts a finished client request that took d. It is
// called by the access log, which knows the repo, the cache result and the
// status it logged (499 for a client that hung up); requests that name no
// known repo are not counted.
func (m *metrics) observeRequest(c *gin.Context, status int, aborted bool, d time.Duration) {
	if m == nil {
		return
	}
	v, ok := c.Get(logRepo)
	repo, _ := v.(string)
	if !ok || repo == "" {
		return
	}
	result := resultPass
	if r, ok := c.Get(logResult); ok {
		if rs, ok := r.(string); ok && rs != "" {
			result = rs
		}
	}
	if aborted || status >= 400 {
		result = resultError
	}
	rs := m.series(repo, result, status)
	rs.requests.Inc()
	rs.duration.Observe(d.Seconds())
	if n := c.Writer.Size(); n > 0 {
		m.servedOf(repo).Add(float64(n))
		m.served.Add(int64(n))
	}
}

// reqKey names the series a client request counts in.
type reqKey struct {
	repo, result string
	status       int
}

// reqSeries are the series of one reqKey, looked up once.
type reqSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// series returns the request series of repo, result and status, resolving
// their labels on first use only (repos, results and statuses are few).
func (m *metrics) series(repo, result string, status int) *reqSeries {
	k := reqKey{repo, result, status}
	if v, ok := m.byRequest.Load(k); ok {
		return v.(*reqSeries)
	}
	rs := &reqSeries{
		requests: m.requests.WithLabelValues(repo, result, strconv.Itoa(status)),
		duration: m.reqDuration.WithLabelValues(repo, result),
	}
	v, _ := m.byRequest.LoadOrStore(k, rs)
	return v.(*reqSeries)
}

// servedOf is the served-bytes counter of repo, made at its first byte.
func (m *metrics) servedOf(repo string) prometheus.Counter {
	if v, ok := m.servedByRepo.Load(repo); ok {
		return v.(prometheus.Counter)
	}
	v, _ := m.servedByRepo.LoadOrStore(repo, m.servedBytes.WithLabelValues(repo))
	return v.(prometheus.Counter)
}

// fillDone records a committed fill: its duration and the bytes it took
// from upstream.
func (m *metrics) fillDone(repo string, d time.Duration, bytes int64) {
	if m == nil {
		return
	}
	m.fillDuration.WithLabelValues(repo).Observe(d.Seconds())
	m.upstreamBytes.WithLabelValues(repo).Add(float64(bytes))
}

func (m *metrics) upstreamError(repo, mirror string) {
	if m == nil {
		return
	}
	m.upstreamErrs.WithLabelValues(repo, mirror).Inc()
}

// ObserveEviction records that the eviction engine removed n objects
// holding bytes bytes.
func (m *metrics) observeEviction(n int, bytes int64) {
	if m == nil || n <= 0 {
		return
	}
	m.evictions.Add(float64(n))
	m.evictedBytes.Add(float64(bytes))
}

func (m *metrics) viewBuilt(repo, view string) {
	if m != nil {
		m.viewBuilds.WithLabelValues(repo, view).Inc()
	}
}

func (m *metrics) viewBuildFailed(repo, view string) {
	if m != nil {
		m.viewFailures.WithLabelValues(repo, view).Inc()
	}
}

// scrapeCollector reads the values that are cheaper to look up at scrape
// time than to maintain: the store's size and the age of every metadata
// generation.
type scrapeCollector struct{ s *Server }

var (
	descCacheBytes = prometheus.NewDesc("dnfproxy_cache_bytes",
		"Bytes of the committed objects in the cache store.", nil, nil)
	descCacheObjects = prometheus.NewDesc("dnfproxy_cache_objects",
		"Committed objects in the cache store.", nil, nil)
	descCacheMax = prometheus.NewDesc("dnfproxy_cache_max_bytes",
		"The configured size bound of the cache store (storage.max_size).", nil, nil)
	descGenAge = prometheus.NewDesc("dnfproxy_metadata_generation_age_seconds",
		"Seconds since upstream last confirmed the current metadata generation of a repo root.",
		[]string{"repo", "root"}, nil)
	descLastSuccess = prometheus.NewDesc("dnfproxy_metadata_last_success_timestamp_seconds",
		"Unix time of the last successful revalidation of a repo root's metadata.",
		[]string{"repo", "root"}, nil)
	descDivergent = prometheus.NewDesc("dnfproxy_divergent_packages",
		"Packages diverging from the RHEL ABI reference, by repo and class, over the repo's analysed roots.",
		[]string{"repo", "class"}, nil)
)

func (sc *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descCacheBytes
	ch <- descCacheObjects
	ch <- descCacheMax
	ch <- descGenAge
	ch <- descLastSuccess
	ch <- descDivergent
}

func (sc *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	s := sc.s
	if sz, ok := s.store.(cache.Sizer); ok {
		objects, bytes := sz.Size()
		ch <- prometheus.MustNewConstMetric(descCacheBytes, prometheus.GaugeValue, float64(bytes))
		ch <- prometheus.MustNewConstMetric(descCacheObjects, prometheus.GaugeValue, float64(objects))
	}
	ch <- prometheus.MustNewConstMetric(descCacheMax, prometheus.GaugeValue, float64(s.cfg.Storage.MaxSize))
	now := time.Now()
	for _, re := range s.repos {
		for _, r := range re.gens.Status() {
			ch <- prometheus.MustNewConstMetric(descGenAge, prometheus.GaugeValue,
				now.Sub(r.Cur.Fetched).Seconds(), re.name, r.Root)
			if !r.Health.LastSuccess.IsZero() || !r.Cur.Fetched.IsZero() {
				last := r.Health.LastSuccess
				if last.IsZero() {
					last = r.Cur.Fetched
				}
				ch <- prometheus.MustNewConstMetric(descLastSuccess, prometheus.GaugeValue,
					float64(last.UnixNano())/1e9, re.name, r.Root)
			}
		}
	}
	for repo, byClass := range s.views.Divergent() {
		for class, n := range byClass {
			ch <- prometheus.MustNewConstMetric(descDivergent, prometheus.GaugeValue, float64(n), repo, class)
		}
	}
}
