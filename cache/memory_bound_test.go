package cache_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/cache"
)

const memoryEnv = "DNFPROXY_CACHE_MEMORY_DIR"

// TestBadgerMemoryBound writes and reads back a 256 MiB object in a fresh
// process with the default options and checks that its peak resident set
// stayed under 100 MiB: chunks stream to badger, and the pages badger maps
// to write and read them are released as it goes.
func TestBadgerMemoryBound(t *testing.T) {
	if dir := os.Getenv(memoryEnv); dir != "" {
		memoryChild(dir)
		return
	}
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc/self/status")
	}
	if raceEnabled {
		t.Skip("the race detector's shadow memory distorts the resident set")
	}
	if testing.Short() {
		t.Skip("writes 256 MiB")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestBadgerMemoryBound$")
	cmd.Env = append(os.Environ(), memoryEnv+"="+t.TempDir())
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var hwm int64
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			hwm, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	if hwm == 0 {
		t.Fatalf("child printed no VmHWM:\n%s", out)
	}
	t.Logf("peak RSS writing and reading 256 MiB: %d MiB", hwm>>10)
	if hwm > 100<<10 {
		t.Errorf("peak RSS %d MiB, want under 100 MiB", hwm>>10)
	}
}

func memoryChild(dir string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	const size = 256 << 20
	ctx := context.Background()
	s, err := cache.OpenBadger(dir, cache.DefaultBadgerOptions())
	if err != nil {
		fail(err)
	}
	w, err := s.Create(ctx, "big", cache.Meta{})
	if err != nil {
		fail(err)
	}
	buf := make([]byte, 32<<10)
	for i := 0; i < size/len(buf); i++ {
		for j := range buf {
			buf[j] = byte(i + j)
		}
		if _, err := w.Write(buf); err != nil {
			fail(err)
		}
	}
	if err := w.Commit(ctx); err != nil {
		fail(err)
	}
	o, err := s.Get(ctx, "big")
	if err != nil {
		fail(err)
	}
	want := make([]byte, len(buf))
	for i := 0; ; i++ {
		_, err := io.ReadFull(o, buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			fail(err)
		}
		for j := range want {
			want[j] = byte(i + j)
		}
		if !bytes.Equal(buf, want) {
			fail(fmt.Errorf("wrong bytes at %d", i*len(buf)))
		}
	}
	o.Close()
	if err := s.Close(); err != nil {
		fail(err)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fail(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			fmt.Println(l)
		}
	}
	os.Exit(0)
}
