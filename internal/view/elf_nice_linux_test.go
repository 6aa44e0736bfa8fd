package view

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// threadNice reads the calling thread's nice value from procfs (field 19
// of /proc/thread-self/stat).
func threadNice(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/thread-self/stat")
	if err != nil {
		t.Skipf("no /proc/thread-self: %v", err)
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	n, err := strconv.Atoi(fields[16]) // field 19, counted from field 3
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLowPriority: fn runs on a thread with nice elfNice, and the caller's
// thread keeps its own.
func TestLowPriority(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := threadNice(t)
	var inside int
	lowPriority(func() { inside = threadNice(t) })
	// An absolute value: a process already nicer than elfNice stays so.
	if want := max(before, elfNice); inside != want {
		t.Errorf("nice inside lowPriority = %d, want %d", inside, want)
	}
	if after := threadNice(t); after != before {
		t.Errorf("caller's thread nice %d after lowPriority, was %d", after, before)
	}
}
