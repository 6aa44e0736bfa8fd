// Package packaging holds the RPM spec, the systemd unit and the files the
// package installs; its tests build the RPM with the real rpmbuild and run
// what it installs.
package packaging

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

var (
	rpmOnce sync.Once
	rpmDir  string // rpmbuild's _topdir, shared by the tests of this binary
	rpmPath string
	rpmErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if rpmDir != "" {
		os.RemoveAll(rpmDir)
	}
	os.Exit(code)
}

// builtRPM builds the package once per test binary with build-rpm.sh, as
// `make rpm` does, offline (GOPROXY=off: the module cache must hold the
// modules, as it does once the module's tests compile).
func builtRPM(t *testing.T) string {
	t.Helper()
	testenv.RequireTool(t, "rpmbuild")
	testenv.RequireTool(t, "go")
	rpmOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dnfproxy-rpmbuild-")
		if err != nil {
			rpmErr = err
			return
		}
		rpmDir = dir
		cmd := exec.Command("./build-rpm.sh", dir, "0.1.0")
		cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=")
		out, err := cmd.Output()
		if err != nil {
			stderr := ""
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			rpmErr = fmt.Errorf("build-rpm.sh: %v\n%s%s", err, out, stderr)
			return
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		rpmPath = lines[len(lines)-1]
	})
	if rpmErr != nil {
		t.Fatal(rpmErr)
	}
	return rpmPath
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The paths the package installs; nothing else may be in it.
var packagedPaths = []string{
	"/etc/dnfproxy",
	"/etc/dnfproxy/config.yaml",
	"/etc/dnfproxy/rules.d",
	"/etc/sysconfig/dnfproxy",
	"/usr/bin/dnfproxy",
	"/usr/lib/systemd/system/dnfproxy.service",
	"/var/lib/dnfproxy",
}

func TestRPMContents(t *testing.T) {
	rpm := builtRPM(t)
	got := strings.Fields(run(t, "rpm", "-qlp", rpm))
	slices.Sort(got)
	if !slices.Equal(got, packagedPaths) {
		t.Errorf("rpm -qlp lists\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(packagedPaths, "\n  "))
	}
	// Mode, owner and %config flags of each path.
	attrs := map[string]string{}
	for line := range strings.Lines(run(t, "rpm", "-qp", "--qf", `[%{FILENAMES} %{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEFLAGS:fflags}\n]`, rpm)) {
		f := strings.Fields(line)
		if len(f) >= 3 {
			attrs[f[0]] = strings.Join(f[1:], " ")
		}
	}
	for path, want := range map[string]string{
		"/usr/bin/dnfproxy":                        "-rwxr-xr-x root:root",
		"/etc/dnfproxy":                            "drwxr-x--- root:dnfproxy",
		"/etc/dnfproxy/config.yaml":                "-rw-r----- root:dnfproxy cn",
		"/etc/dnfproxy/rules.d":                    "drwxr-x--- root:dnfproxy",
		"/etc/sysconfig/dnfproxy":                  "-rw------- root:root cn",
		"/usr/lib/systemd/system/dnfproxy.service": "-rw-r--r-- root:root",
		"/var/lib/dnfproxy":                        "drwxr-x--- dnfproxy:dnfproxy",
	} {
		if got := attrs[path]; got != want {
			t.Errorf("%s: %q, want %q (mode owner:group %%config flags)", path, got, want)
		}
	}
	if pre := run(t, "rpm", "-qp", "--scripts", rpm); !strings.Contains(pre, "useradd -r -g dnfproxy") {
		t.Errorf("%%pre does not create the dnfproxy user:\n%s", pre)
	}
}

// extract unpacks the RPM's payload into a fresh directory.
func extract(t *testing.T, rpm string) string {
	t.Helper()
	testenv.RequireTool(t, "rpm2cpio")
	testenv.RequireTool(t, "cpio")
	root := t.TempDir()
	cmd := exec.Command("sh", "-c", `rpm2cpio "$1" | cpio -idm --quiet --no-absolute-filenames`, "sh", rpm)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rpm2cpio | cpio: %v\n%s", err, out)
	}
	return root
}

// copyTree copies the regular files below src into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case fi.IsDir():
			return os.MkdirAll(target, 0o755)
		case fi.Mode()&os.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestUnitVerifies(t *testing.T) {
	analyze := testenv.RequireTool(t, "systemd-analyze")
	root := extract(t, builtRPM(t))
	unit := filepath.Join(root, "usr/lib/systemd/system/dnfproxy.service")
	text, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "User=dnfproxy", "ProtectSystem=strict",
		"ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes", "ReadWritePaths=/var/lib/dnfproxy",
		"LimitNOFILE=65536", "Restart=on-failure", "EnvironmentFile=-/etc/sysconfig/dnfproxy",
		"ExecStart=/usr/bin/dnfproxy serve --config /etc/dnfproxy/config.yaml",
	} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want)).Match(text) {
			t.Errorf("unit lacks %q", want)
		}
	}
	// systemd-analyze verify --root checks the unit against the extracted
	// package: the commands it runs must exist there, and the units it
	// orders against come from the host's systemd.
	copyTree(t, "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/system"))
	kill, err := exec.LookPath("kill")
	if err != nil {
		t.Skip("no kill(1) on this host")
	}
	data, err := os.ReadFile(kill)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/bin/kill"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--root="+root, "/usr/lib/systemd/system/dnfproxy.service").CombinedOutput()
	// verify exits 0 on mere warnings (an unknown key, say): any output fails.
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	// The hardening, as systemd scores it (0 best, 10 worst; "OK" is below
	// 5). The unit scores 1.2 with systemd 252; keep it at 2 or better.
	out, err = exec.Command(analyze, "security", "--offline=yes", "--root="+root, "dnfproxy.service").CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for dnfproxy.service: (\d+\.\d+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	if score, _ := strconv.ParseFloat(string(m[1]), 64); score > 2.0 {
		t.Errorf("systemd-analyze security: exposure %.1f, want at most 2.0:\n%s", score, out)
	}
}

func TestPackagedConfig(t *testing.T) {
	for _, env := range []string{config.EnvListen, config.EnvAdminListen, config.EnvAdminToken, config.EnvStorageDir} {
		t.Setenv(env, "")
	}
	c, err := config.Load("config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The packaged file is the defaults but for where a service listens
	// and keeps its data.
	want := config.Default()
	want.Listen = ":8080"
	want.Storage.Dir = "/var/lib/dnfproxy"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("packaged config.yaml differs from the defaults in more than listen and storage.dir:\n got %#v\nwant %#v", c, want)
	}
}

// TestPackagedBinaryServes starts the packaged binary with the packaged
// configuration (listeners and storage moved by the environment) under a
// real notify socket, and checks READY=1, /healthz and a clean stop.
func TestPackagedBinaryServes(t *testing.T) {
	root := extract(t, builtRPM(t))
	bin := filepath.Join(root, "usr/bin/dnfproxy")
	tmp := t.TempDir()
	sockPath := filepath.Join(tmp, "notify.sock")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve", "--config", filepath.Join(root, "etc/dnfproxy/config.yaml"))
	cmd.Env = append(os.Environ(),
		config.EnvListen+"=127.0.0.1:0", config.EnvAdminListen+"=127.0.0.1:0",
		config.EnvStorageDir+"="+filepath.Join(tmp, "data"), config.EnvAdminToken+"=t",
		"NOTIFY_SOCKET="+sockPath)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The log names the bound addresses: client first, then admin.
	addrs := make(chan string, 2)
	var logMu sync.Mutex
	var logText strings.Builder
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

	buf := make([]byte, 4096)
	sock.SetReadDeadline(time.Now().Add(90 * time.Second))
	n, err := sock.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "READY=1") {
		t.Fatalf("no READY=1 from the packaged binary: %q, %v\n%s", buf[:n], err, logs())
	}
	var admin string
	for range 2 {
		select {
		case admin = <-addrs:
		case <-time.After(10 * time.Second):
			t.Fatalf("listening lines missing from the log:\n%s", logs())
		}
	}
	resp, err := http.Get("http://" + admin + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz: %d %s", resp.StatusCode, body)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-logDone
	if err := cmd.Wait(); err != nil {
		t.Errorf("dnfproxy after SIGTERM: %v\n%s", err, logs())
	}
	sock.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := sock.Read(buf); err != nil || string(buf[:n]) != "STOPPING=1" {
		t.Errorf("after SIGTERM the notify socket got %q, %v; want STOPPING=1", buf[:n], err)
	}
}
