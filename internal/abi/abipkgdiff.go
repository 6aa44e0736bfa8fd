package abi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dnfproxy/dnfproxy/metadata"
)

// ErrAbipkgdiff is wrapped when abipkgdiff fails (exit bits 1 or 2, a
// signal, or a timeout).
var ErrAbipkgdiff = errors.New("abipkgdiff failed")

// abipkgdiff's exit status is a bit set (libabigail's abidiff_status).
const (
	abiError        = 1
	abiUsageError   = 2
	abiChange       = 4
	abiIncompatible = 8
)

// Defaults of Abipkgdiff.
const (
	DefaultMaxReport         = 16 << 10
	DefaultAbipkgdiffTimeout = 10 * time.Minute
)

// Abipkgdiff runs libabigail's abipkgdiff on two RPM files, the deep layer
// that sees type changes (a struct that grows, a parameter added) when
// debuginfo packages are given.
type Abipkgdiff struct {
	Path        string        // the binary; "" looks up "abipkgdiff" on PATH
	MaxReport   int           // report bytes kept; default DefaultMaxReport
	Timeout     time.Duration // per run; default DefaultAbipkgdiffTimeout
	AllBinaries bool          // compare executables too (default: --dso-only)
}

// DeepInput names the files of one comparison; debuginfo and devel
// packages are optional.
type DeepInput struct {
	Old, New           string
	OldDebug, NewDebug []string
	OldDevel, NewDevel string
}

// DeepResult is the outcome of one abipkgdiff run.
type DeepResult struct {
	Status       int    `json:"status"` // the exit status
	Incompatible bool   `json:"incompatible"`
	Changed      bool   `json:"changed"`
	Report       string `json:"report"` // stdout, capped to MaxReport
	Truncated    bool   `json:"truncated,omitempty"`
}

// Compare runs abipkgdiff and maps its exit bits as rpminspect does: 8 is an
// incompatible change, 4 a change, 1 and 2 errors (returned wrapping
// ErrAbipkgdiff, with the start of its output).
func (d *Abipkgdiff) Compare(ctx context.Context, in DeepInput) (*DeepResult, error) {
	bin := d.Path
	if bin == "" {
		p, err := exec.LookPath("abipkgdiff")
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrAbipkgdiff, err)
		}
		bin = p
	}
	timeout, maxReport := d.Timeout, d.MaxReport
	if timeout <= 0 {
		timeout = DefaultAbipkgdiffTimeout
	}
	if maxReport <= 0 {
		maxReport = DefaultMaxReport
	}
	var args []string
	if !d.AllBinaries {
		args = append(args, "--dso-only")
	}
	for _, p := range in.OldDebug {
		args = append(args, "--d1", p)
	}
	for _, p := range in.NewDebug {
		args = append(args, "--d2", p)
	}
	if in.OldDevel != "" {
		args = append(args, "--devel1", in.OldDevel)
	}
	if in.NewDevel != "" {
		args = append(args, "--devel2", in.NewDevel)
	}
	args = append(args, in.Old, in.New)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	out := &capped{max: maxReport}
	var stderr capped
	stderr.max = 4096
	cmd.Stdout, cmd.Stderr = out, &stderr
	err := cmd.Run()
	status := 0
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		status = exit.ExitCode()
	case ctx.Err() != nil:
		return nil, fmt.Errorf("%w: %s vs %s: %v", ErrAbipkgdiff, filepath.Base(in.Old), filepath.Base(in.New), ctx.Err())
	default:
		return nil, fmt.Errorf("%w: %v", ErrAbipkgdiff, err)
	}
	if status&(abiError|abiUsageError) != 0 {
		return nil, fmt.Errorf("%w: exit %d on %s vs %s: %s", ErrAbipkgdiff, status, filepath.Base(in.Old), filepath.Base(in.New),
			firstLines(stderr.String()+out.String(), 3))
	}
	return &DeepResult{
		Status: status, Incompatible: status&abiIncompatible != 0, Changed: status&abiChange != 0,
		Report: out.String(), Truncated: out.dropped > 0,
	}, nil
}

// summaryLine matches abipkgdiff's per-library counts, e.g.
// "Functions changes summary: 1 Removed, 1 Changed (78 filtered out), 8 Added functions".
var summaryLine = regexp.MustCompile(`changes summary: ([0-9]+) Removed(?:[^,]*), (?:([0-9]+) Changed[^,]*, )?([0-9]+) Added`)

// Findings turns the result into findings: an incompatible change (bit 8)
// is abi-changed; a change (bit 4) is abi-changed when the report counts
// changed functions or variables (type-level changes) and abi-extended when
// it counts only additions. The report, capped, follows the first line of
// the reason.
func (r *DeepResult) Findings(against string) []metadata.Finding {
	if r == nil || !(r.Incompatible || r.Changed) {
		return nil
	}
	var removed, changed, added int
	for _, m := range summaryLine.FindAllStringSubmatch(r.Report, -1) {
		n0, _ := strconv.Atoi(m[1])
		n1, _ := strconv.Atoi(m[2])
		n2, _ := strconv.Atoi(m[3])
		removed, changed, added = removed+n0, changed+n1, added+n2
	}
	removedBins := strings.Contains(r.Report, "Removed binaries") || strings.Contains(r.Report, "Removed binary")
	class, what := metadata.ClassABIExtended, "compatible additions"
	switch {
	case r.Incompatible:
		class, what = metadata.ClassABIChanged, "an incompatible ABI change"
	case changed > 0 || removed > 0 || removedBins:
		class, what = metadata.ClassABIChanged, "ABI changes"
	}
	head := fmt.Sprintf("%s: abipkgdiff reports %s (exit %d; %d removed, %d changed, %d added functions/variables)",
		against, what, r.Status, removed, changed, added)
	report := strings.TrimSpace(r.Report)
	if r.Truncated {
		report += "\n[report truncated]"
	}
	return []metadata.Finding{{Class: class, Reason: head + "\n" + report}}
}

// capped keeps the first max bytes written and counts the rest.
type capped struct {
	buf     bytes.Buffer
	max     int
	dropped int64
}

func (c *capped) Write(p []byte) (int, error) {
	room := c.max - c.buf.Len()
	if room > len(p) {
		room = len(p)
	}
	if room > 0 {
		c.buf.Write(p[:room])
	}
	c.dropped += int64(len(p) - max(room, 0))
	return len(p), nil
}

func (c *capped) String() string { return c.buf.String() }

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " / ")
}

// DeepComparePair runs abipkgdiff on a pair (with the debuginfo packages of
// each side, when given) and returns its findings: DeepCompare of a
// request.
func (a *Analyzer) DeepComparePair(ctx context.Context, d *Abipkgdiff, old, nw PackageRef, oldDebug, newDebug []PackageRef, open Opener) ([]metadata.Finding, error) {
	return a.DeepCompare(ctx, d, DeepRequest{Old: old, New: nw, OldDebug: oldDebug, NewDebug: newDebug}, open)
}

// DeepCompare runs abipkgdiff on a request's pair, passing its debuginfo
// packages (--d1, --d2), and returns its findings. The RPMs are copied into
// a temporary directory through open; the result is stored under DeepKey,
// which names every package's checksum.
func (a *Analyzer) DeepCompare(ctx context.Context, d *Abipkgdiff, r DeepRequest, open Opener) ([]metadata.Finding, error) {
	old, nw, oldDebug, newDebug := r.Old, r.New, r.OldDebug, r.NewDebug
	if old.Checksum.Value == "" || nw.Checksum.Value == "" {
		return nil, fmt.Errorf("%w: %s or %s", ErrNoChecksum, old.NEVRA(), nw.NEVRA())
	}
	k := []byte(a.DeepKey(r))
	if fs, ok, err := a.load(k); err != nil || ok {
		if ok {
			a.reused.Add(1)
		}
		return fs, err
	}
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-a.sem }()
	dir, err := os.MkdirTemp(a.opts.Limits.TempDir, "dnfproxy-abipkgdiff-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	save := func(sub string, r PackageRef) (string, error) {
		p := filepath.Join(dir, sub, r.NEVRA()+".rpm")
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return "", err
		}
		rc, err := open(ctx, r)
		if err != nil {
			return "", fmt.Errorf("opening %s: %w", r.NEVRA(), err)
		}
		defer rc.Close()
		f, err := os.Create(p)
		if err != nil {
			return "", err
		}
		if _, err := io.Copy(f, rc); err != nil {
			f.Close()
			return "", fmt.Errorf("copying %s: %w", r.NEVRA(), err)
		}
		return p, f.Close()
	}
	var in DeepInput
	if in.Old, err = save("old", old); err != nil {
		return nil, err
	}
	if in.New, err = save("new", nw); err != nil {
		return nil, err
	}
	for _, r := range oldDebug {
		p, err := save("old-debug", r)
		if err != nil {
			return nil, err
		}
		in.OldDebug = append(in.OldDebug, p)
	}
	for _, r := range newDebug {
		p, err := save("new-debug", r)
		if err != nil {
			return nil, err
		}
		in.NewDebug = append(in.NewDebug, p)
	}
	res, err := d.Compare(ctx, in)
	if err != nil {
		return nil, err
	}
	a.analyse.Add(1)
	fs := res.Findings("compared with " + old.NEVRA())
	b, err := json.Marshal(storedResult{Old: old.NEVRA(), New: nw.NEVRA(), Findings: fs})
	if err != nil {
		return nil, err
	}
	if err := a.store(k, b); err != nil {
		return nil, err
	}
	return fs, nil
}
