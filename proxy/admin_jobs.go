package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/warm"
)

// maxJobs bounds the warm jobs kept in memory; the oldest finished ones
// are forgotten first.
const maxJobs = 100

// Job states.
const (
	jobRunning = "running"
	jobDone    = "done"
	jobFailed  = "failed"
)

// errTooManyJobs is returned when maxJobs jobs are all still running.
var errTooManyJobs = errors.New("too many warm jobs running")

// job is a warm run started through the admin API.
type job struct {
	id       string
	repo     string
	path     string
	packages string
	names    []string
	created  time.Time

	mu       sync.Mutex
	state    string
	progress warm.Progress
	result   *warm.Result
	err      string
	finished time.Time
}

// JobProgress is a job's progress in the API.
type JobProgress struct {
	Total   int    `json:"total"`
	Done    int    `json:"done"`
	Failed  int    `json:"failed"`
	Bytes   int64  `json:"bytes"`
	Current string `json:"current,omitempty"`
}

// JobStatus is GET /api/v1/jobs/<id>.
type JobStatus struct {
	ID       string       `json:"id"`
	Repo     string       `json:"repo"`
	Path     string       `json:"path"`
	Packages string       `json:"packages"`
	Names    []string     `json:"names,omitempty"`
	State    string       `json:"state"`
	Progress JobProgress  `json:"progress"`
	Result   *warm.Result `json:"result"`
	Error    string       `json:"error,omitempty"`
	Created  time.Time    `json:"created"`
	Finished *time.Time   `json:"finished,omitempty"`
}

func (j *job) status() JobStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	st := JobStatus{
		ID: j.id, Repo: j.repo, Path: j.path, Packages: j.packages, Names: j.names,
		State: j.state, Result: j.result, Error: j.err, Created: j.created,
		Progress: JobProgress{
			Total: j.progress.Total, Done: j.progress.Done, Failed: j.progress.Failed,
			Bytes: j.progress.Bytes, Current: j.progress.Current,
		},
	}
	if !j.finished.IsZero() {
		f := j.finished
		st.Finished = &f
	}
	return st
}

func (j *job) running() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.state == jobRunning
}

// jobList holds the jobs, oldest first.
type jobList struct {
	mu   sync.Mutex
	jobs []*job
	wg   sync.WaitGroup
}

// newestFirst returns the jobs, newest first (they are kept in creation
// order).
func (l *jobList) newestFirst() []*job {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.jobs)
	slices.Reverse(out)
	return out
}

func (l *jobList) add(j *job) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.jobs) >= maxJobs {
		i := 0
		for i < len(l.jobs) && l.jobs[i].running() {
			i++
		}
		if i == len(l.jobs) {
			return errTooManyJobs
		}
		l.jobs = append(l.jobs[:i], l.jobs[i+1:]...)
	}
	l.jobs = append(l.jobs, j)
	return nil
}

func (l *jobList) get(id string) *job {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, j := range l.jobs {
		if j.id == id {
			return j
		}
	}
	return nil
}

func newJobID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// startWarm starts a warm job in the background, through the client
// listener, on the server's base context (Close cancels it).
func (s *Server) startWarm(req warmRequest) (*job, error) {
	j := &job{
		id: newJobID(), repo: req.Repo, path: req.Path, packages: req.Packages, names: req.Names,
		created: time.Now(), state: jobRunning,
	}
	if err := s.admin.jobs.add(j); err != nil {
		return nil, err
	}
	opt := warm.Options{
		Proxy: s.clientURL(), Repo: req.Repo, Path: req.Path,
		Packages: req.Packages, Names: req.Names, Concurrency: req.Concurrency,
	}
	s.admin.jobs.wg.Add(1)
	go func() {
		defer s.admin.jobs.wg.Done()
		s.runJob(s.baseCtx, j, opt)
	}()
	return j, nil
}

func (s *Server) runJob(ctx context.Context, j *job, opt warm.Options) {
	s.log.Info("warm job started", "job", j.id, "repo", j.repo, "path", j.path, "packages", j.packages)
	res, err := warm.Run(ctx, opt, func(p warm.Progress) {
		j.mu.Lock()
		j.progress = p
		j.mu.Unlock()
	})
	j.mu.Lock()
	j.finished = time.Now()
	j.result = &res
	if err != nil {
		j.state, j.err = jobFailed, err.Error()
	} else {
		j.state = jobDone
	}
	j.mu.Unlock()
	s.log.Info("warm job finished", "job", j.id, "repo", j.repo, "files", res.Files,
		"bytes", res.Bytes, "failed", len(res.Failed), "err", err)
}

// warmRequest is the body of POST /api/v1/warm.
type warmRequest struct {
	Repo        string   `json:"repo"`
	Path        string   `json:"path"`
	Packages    string   `json:"packages"`    // none | latest | all; default latest
	Names       []string `json:"names"`       // optional: these packages and their dependencies
	Concurrency int      `json:"concurrency"` // optional: parallel downloads
}
