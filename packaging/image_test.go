package packaging

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

// imageUID is the non-root user the image runs as.
const imageUID = 65532

// buildImage builds the image with build-image.sh into a private buildah
// storage and returns the global flags that select that storage and the
// kept build context.
func buildImage(t *testing.T, tag string) (flags []string, ctx string) {
	t.Helper()
	testenv.RequireTool(t, "buildah")
	testenv.RequireTool(t, "go")
	dir := t.TempDir()
	flags = []string{"--root", filepath.Join(dir, "storage"), "--runroot", filepath.Join(dir, "run"), "--storage-driver", "vfs"}
	ctx = filepath.Join(dir, "context")
	cmd := exec.Command("./build-image.sh", tag, "0.1.0", ctx)
	cmd.Env = append(os.Environ(), "BUILDAH_GLOBAL_FLAGS="+strings.Join(flags[:4], " "), "GOFLAGS=", "GOPROXY=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build-image.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		// Containers first; the storage directory goes with t.TempDir.
		exec.Command("buildah", append(flags, "rm", "--all")...).Run()
	})
	return flags, ctx
}

func buildah(t *testing.T, flags []string, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("buildah", append(slices.Clone(flags), args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("buildah %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// checkStatic fails unless path is an ELF executable that needs no dynamic
// loader and no shared library.
func checkStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s has a %v program header: not a static binary", path, p.Type)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v (%v)", path, libs, err)
	}
}

// TestImage builds the OCI image with buildah, checks its configuration and
// contents, and runs it: as UID 65532, from an image holding only the
// static binary, the CA bundle and the storage directory, it serves
// /healthz on the admin port.
func TestImage(t *testing.T) {
	testenv.RequireRoot(t) // buildah run --isolation chroot
	const tag = "localhost/dnfproxy:test"
	flags, ctxDir := buildImage(t, tag)
	checkStatic(t, filepath.Join(ctxDir, "dnfproxy"))

	var img struct {
		OCIv1 struct {
			Config struct {
				User         string
				Env          []string
				Entrypoint   []string
				Cmd          []string
				WorkingDir   string
				ExposedPorts map[string]struct{}
				Volumes      map[string]struct{}
			} `json:"config"`
		}
	}
	if err := json.Unmarshal([]byte(buildah(t, flags, "inspect", "--type", "image", tag)), &img); err != nil {
		t.Fatal(err)
	}
	cfg := img.OCIv1.Config
	if cfg.User != "65532:65532" {
		t.Errorf("image user %q, want 65532:65532 (non-root)", cfg.User)
	}
	if _, ok := cfg.Volumes["/var/lib/dnfproxy"]; !ok || len(cfg.Volumes) != 1 {
		t.Errorf("volumes %v, want /var/lib/dnfproxy", cfg.Volumes)
	}
	if ports := slices.Sorted(func(yield func(string) bool) {
		for p := range cfg.ExposedPorts {
			if !yield(p) {
				return
			}
		}
	}); !slices.Equal(ports, []string{"8080/tcp", "8081/tcp"}) {
		t.Errorf("exposed ports %v, want 8080/tcp 8081/tcp", ports)
	}
	if !slices.Equal(cfg.Entrypoint, []string{"/usr/bin/dnfproxy"}) || !slices.Equal(cfg.Cmd, []string{"serve"}) {
		t.Errorf("entrypoint %q cmd %q", cfg.Entrypoint, cfg.Cmd)
	}

	ctr := buildah(t, flags, "from", "--quiet", tag)
	// The image holds the binary, the CA bundle and the storage dir, nothing more.
	mnt := buildah(t, flags, "mount", ctr)
	var files []string
	filepath.Walk(mnt, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(mnt, p)
			files = append(files, "/"+rel)
		}
		return nil
	})
	slices.Sort(files)
	if want := []string{"/etc/ssl/certs/ca-certificates.crt", "/usr/bin/dnfproxy"}; !slices.Equal(files, want) {
		t.Errorf("files in the image %v, want %v", files, want)
	}
	if fi, err := os.Stat(filepath.Join(mnt, "var/lib/dnfproxy")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != imageUID {
		t.Errorf("/var/lib/dnfproxy in the image: %v, %v; want a directory owned by %d", fi, err, imageUID)
	}
	buildah(t, flags, "umount", ctr)

	// Run the image's own entrypoint and command; only the listeners move
	// to free loopback ports so that the test does not collide with others.
	run := append(slices.Clone(flags), "run", "--isolation", "chroot", "--network", "host",
		"--env", "DNFPROXY_LISTEN=127.0.0.1:0", "--env", "DNFPROXY_ADMIN_LISTEN=127.0.0.1:0", ctr, "--")
	run = append(append(run, cfg.Entrypoint...), cfg.Cmd...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "buildah", run...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logMu sync.Mutex
	var logText strings.Builder
	addrs := make(chan string, 2)
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		re := regexp.MustCompile(`msg=listening addr=(\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			logText.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrs <- m[1]
			}
		}
	}()
	logs := func() string { logMu.Lock(); defer logMu.Unlock(); return logText.String() }
	var admin string
	for range 2 {
		select {
		case admin = <-addrs:
		case <-time.After(90 * time.Second):
			t.Fatalf("the container did not start listening:\n%s", logs())
		}
	}
	resp, err := http.Get("http://" + admin + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz in the container: %d", resp.StatusCode)
	}
	pid := findDescendant(t, cmd.Process.Pid, "dnfproxy")
	if uid := processUID(t, pid); uid != imageUID {
		t.Errorf("dnfproxy in the container runs as UID %d, want %d", uid, imageUID)
	}
	syscall.Kill(pid, syscall.SIGTERM)
	<-logDone
	if err := cmd.Wait(); err != nil {
		t.Errorf("container after SIGTERM: %v\n%s", err, logs())
	}
}

// findDescendant returns the pid of the process named comm below parent.
func findDescendant(t *testing.T, parent int, comm string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		children := map[int][]int{}
		names := map[int]string{}
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if err != nil {
				continue
			}
			// pid (comm) state ppid ...
			s := string(data)
			lp, rp := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
			if lp < 0 || rp < lp {
				continue
			}
			fields := strings.Fields(s[rp+1:])
			if len(fields) < 2 {
				continue
			}
			ppid, _ := strconv.Atoi(fields[1])
			children[ppid] = append(children[ppid], pid)
			names[pid] = s[lp+1 : rp]
		}
		queue := []int{parent}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			if p != parent && names[p] == comm {
				return p
			}
			queue = append(queue, children[p]...)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no %s process below pid %d", comm, parent)
	return 0
}

func processUID(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			uid, _ := strconv.Atoi(f[1]) // effective UID
			return uid
		}
	}
	t.Fatalf("no Uid line in /proc/%d/status", pid)
	return 0
}
