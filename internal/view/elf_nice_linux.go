package view

import (
	"runtime"
	"syscall"
)

// elfNice is the nice value of the threads that run ELF comparisons (and
// of the abipkgdiff processes they start, which inherit it): the kernel
// then gives a processor to the threads serving clients first, whatever
// else the host runs.
const elfNice = 10

// lowPriority runs fn on an OS thread of its own whose nice value is
// elfNice, and waits for it. On Linux the nice value is a thread's
// attribute; an unprivileged process cannot lower it again, so the thread
// is not given back to the Go scheduler: the goroutine ends still locked
// to it, and the runtime discards the thread. When the nice value cannot
// be set, fn runs all the same.
func lowPriority(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), elfNice)
		fn()
	}()
	<-done
}
