package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// listenNotify opens a unix datagram socket as systemd does for
// Type=notify services and points $NOTIFY_SOCKET at it.
func listenNotify(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv(notifySocketEnv, name)
	return conn
}

func readDatagram(t *testing.T, conn *net.UnixConn, wait time.Duration) string {
	t.Helper()
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(wait))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification on the socket: %v", err)
	}
	return string(buf[:n])
}

func TestSDNotify(t *testing.T) {
	for _, tc := range []struct{ name, socket string }{
		{"path", filepath.Join(t.TempDir(), "notify.sock")},
		{"abstract", fmt.Sprintf("@dnfproxy-test-%d", os.Getpid())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := listenNotify(t, tc.socket)
			if err := sdNotify("READY=1\nSTATUS=x"); err != nil {
				t.Fatal(err)
			}
			if got := readDatagram(t, conn, 5*time.Second); got != "READY=1\nSTATUS=x" {
				t.Errorf("datagram = %q", got)
			}
		})
	}
	t.Run("unset", func(t *testing.T) {
		t.Setenv(notifySocketEnv, "")
		if err := sdNotify("READY=1"); err != nil {
			t.Errorf("sdNotify without NOTIFY_SOCKET = %v, want nil", err)
		}
	})
	t.Run("nobody listening", func(t *testing.T) {
		t.Setenv(notifySocketEnv, filepath.Join(t.TempDir(), "gone.sock"))
		if err := sdNotify("READY=1"); err == nil {
			t.Error("sdNotify to a missing socket = nil, want an error")
		}
	})
	t.Run("relative", func(t *testing.T) {
		t.Setenv(notifySocketEnv, "notify.sock")
		if err := sdNotify("READY=1"); err == nil || !strings.Contains(err.Error(), "not an absolute path") {
			t.Errorf("sdNotify(relative) = %v", err)
		}
	})
}

// syncBuffer is a bytes.Buffer safe for the server's log and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// writeServeConfig writes a configuration with loopback listeners on free
// ports and storage in a temp dir; extra is appended at the top level.
func writeServeConfig(t *testing.T, upstream, extra string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`listen: "127.0.0.1:0"
admin:
  listen: "127.0.0.1:0"
storage:
  dir: %q
repos:
  - name: test
    url: %q
%s`, filepath.Join(dir, "data"), upstream, extra)
	path := filepath.Join(dir, "dnfproxy.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runningServe is `dnfproxy serve` run in-process.
type runningServe struct {
	client, admin string // base URLs
	log           *syncBuffer
}

// startServe runs serve with args until the test ends and waits for it to
// be ready.
func startServe(t *testing.T, args ...string) *runningServe {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rs := &runningServe{log: &syncBuffer{}}
	readyc := make(chan [2]net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, args, rs.log, func(c, a net.Addr) { readyc <- [2]net.Addr{c, a} })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
	})
	select {
	case addrs := <-readyc:
		rs.client, rs.admin = "http://"+addrs[0].String(), "http://"+addrs[1].String()
	case err := <-done:
		t.Fatalf("serve ended before it was ready: %v\n%s", err, rs.log)
	case <-time.After(60 * time.Second):
		t.Fatalf("serve not ready after 60s\n%s", rs.log)
	}
	return rs
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestServeNotifiesReadyWhenListening(t *testing.T) {
	sock := listenNotify(t, filepath.Join(t.TempDir(), "notify.sock"))
	rs := startServe(t, "--config", writeServeConfig(t, "http://127.0.0.1:9/", ""))
	// serve sends READY=1 before it calls ready: the datagram is there.
	if got := readDatagram(t, sock, time.Second); !strings.HasPrefix(got, "READY=1\n") {
		t.Errorf("first notification = %q, want READY=1 first", got)
	}
	if code, body := httpGet(t, rs.admin+"/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz after READY=1: %d %s", code, body)
	}
}

func TestServeLogLevel(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		args         []string
		wantInfo     bool
	}{
		{"default info", "", nil, true},
		{"config warn", "log:\n  level: warn\n", nil, false},
		{"flag error", "", []string{"--log-level", "error"}, false},
		{"flag wins over config", "log:\n  level: error\n", []string{"--log-level", "info"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(notifySocketEnv, "")
			args := append([]string{"--config", writeServeConfig(t, "http://127.0.0.1:9/", tc.config)}, tc.args...)
			rs := startServe(t, args...)
			got := strings.Contains(rs.log.String(), `msg=listening`)
			if got != tc.wantInfo {
				t.Errorf("info line 'listening' logged = %v, want %v; log:\n%s", got, tc.wantInfo, rs.log)
			}
		})
	}
}

func TestServeBadLogLevel(t *testing.T) {
	err := serve(context.Background(), []string{"--log-level", "verbose"}, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), `--log-level: log level "verbose": not one of debug, info, warn, error`) {
		t.Errorf("serve --log-level verbose = %v", err)
	}
}
