package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// LibrepoOptions says where librepo fetches a repo's metadata from: base
// URLs (tried in order, as dnf's baseurl), or a metalink or mirrorlist URL.
type LibrepoOptions struct {
	URLs       []string
	Metalink   string
	Mirrorlist string
	// Only lists the record types to download besides repomd.xml (librepo's
	// yumdlist); nil downloads every record.
	Only    []string
	Timeout time.Duration // of the whole download; default DefaultDNFTimeout
}

// LibrepoResult is what librepo downloaded.
type LibrepoResult struct {
	Revision string            // repomd.xml's revision
	Paths    map[string]string // record type (and "repomd") → downloaded file
	Records  []string          // record types repomd.xml lists, sorted
}

// LibrepoError is librepo's own refusal of a repo: its return code and
// message (e.g. "Downloading error", "checksum mismatch").
type LibrepoError struct {
	Code    int
	Message string
}

func (e *LibrepoError) Error() string { return fmt.Sprintf("librepo: %s (rc %d)", e.Message, e.Code) }

// librepoScript downloads the metadata as dnf does: checksums of every
// file verified against repomd.xml (and repomd.xml against the metalink).
const librepoScript = `
import json, sys, librepo
opts = json.loads(sys.argv[1])
h = librepo.Handle()
h.repotype = librepo.LR_YUMREPO
h.destdir = opts["dest"]
h.checksum = True
if opts["urls"]:
    h.urls = opts["urls"]
if opts["metalink"]:
    h.metalinkurl = opts["metalink"]
if opts["mirrorlist"]:
    h.mirrorlisturl = opts["mirrorlist"]
if opts["only"] is not None:
    h.yumdlist = opts["only"]
try:
    r = h.perform()
except librepo.LibrepoException as e:
    rc, msg = e.args[0], e.args[1]
    print(json.dumps({"error": {"code": rc, "message": str(msg)}}))
    sys.exit(0)
md = r.getinfo(librepo.LRR_YUM_REPOMD)
paths = {k: v for k, v in r.getinfo(librepo.LRR_YUM_REPO).items() if isinstance(v, str) and k not in ("url", "destdir")}
records = sorted(k for k, v in md.items() if isinstance(v, dict))
print(json.dumps({"revision": md.get("revision") or "", "paths": paths, "records": records}))
`

// Librepo downloads a repo's metadata into dest with python3-librepo, the
// library under dnf 4 and microdnf. It returns a *LibrepoError when
// librepo refuses the repo (assert on that: it is what a client sees), and
// fails the test only when librepo cannot run at all; it is skipped (failed
// InCI) without python3-librepo.
func Librepo(t testing.TB, dest string, opts LibrepoOptions) (*LibrepoResult, error) {
	t.Helper()
	py := RequirePython(t, "librepo")
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = DefaultDNFTimeout
	}
	arg, err := json.Marshal(map[string]any{
		"dest": dest, "urls": opts.URLs, "metalink": opts.Metalink, "mirrorlist": opts.Mirrorlist, "only": opts.Only,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-c", librepoScript, string(arg))
	cmd.Env = dnfEnv()
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("testenv: librepo script: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("testenv: librepo script: %v", err)
	}
	var res struct {
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Revision string            `json:"revision"`
		Paths    map[string]string `json:"paths"`
		Records  []string          `json:"records"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("testenv: librepo script output %q: %v", strings.TrimSpace(string(out)), err)
	}
	if res.Error != nil {
		return nil, &LibrepoError{Code: res.Error.Code, Message: res.Error.Message}
	}
	return &LibrepoResult{Revision: res.Revision, Paths: res.Paths, Records: res.Records}, nil
}
