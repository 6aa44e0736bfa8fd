package metadata

import (
	"errors"
	"io"
	"sync"
)

// The scans and rewrites of large files run their stages on different
// goroutines, so a second core works on them: the decoder fills buffers
// ahead of the scanner (readAhead), and the encoder takes the rewritten
// bytes behind it (writeBehind). Each holds at most pipeBuffers buffers of
// pipeBufSize bytes, whatever the file's size.
const (
	pipeBufSize = 128 << 10
	pipeBuffers = 4
)

// readAhead reads r on a goroutine of its own into a few buffers. Close
// stops that goroutine and waits for it (it does not close r), so the
// caller may close r afterwards.
type readAhead struct {
	full chan []byte
	free chan []byte
	stop chan struct{}
	done chan struct{}
	err  error // the read error that ended the goroutine; read after full is closed
	cur  []byte
	buf  []byte // the buffer cur is part of
	once sync.Once
}

func newReadAhead(r io.Reader) *readAhead {
	a := &readAhead{
		full: make(chan []byte, pipeBuffers),
		free: make(chan []byte, pipeBuffers),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	for range pipeBuffers {
		a.free <- make([]byte, pipeBufSize)
	}
	go a.run(r)
	return a
}

func (a *readAhead) run(r io.Reader) {
	defer close(a.done)
	defer close(a.full)
	for {
		var b []byte
		select {
		case b = <-a.free:
		case <-a.stop:
			return
		}
		// Fill the buffer (fewer hand-overs), keeping r's own error as it
		// is: a truncated stream's io.ErrUnexpectedEOF must not become EOF.
		n := 0
		var err error
		for n < len(b) && err == nil {
			var k int
			k, err = r.Read(b[n:])
			n += k
		}
		if n > 0 {
			select {
			case a.full <- b[:n]:
			case <-a.stop:
				return
			}
		}
		if err != nil {
			a.err = err
			return
		}
	}
}

func (a *readAhead) Read(p []byte) (int, error) {
	if len(a.cur) == 0 {
		if a.buf != nil {
			a.free <- a.buf[:cap(a.buf)]
			a.buf = nil
		}
		b, ok := <-a.full
		if !ok {
			return 0, a.err
		}
		a.cur, a.buf = b, b
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

// Close stops the reading goroutine and waits for it.
func (a *readAhead) Close() error {
	a.once.Do(func() { close(a.stop) })
	<-a.done
	return nil
}

// writeBehind writes to w on a goroutine of its own: Write copies into a
// buffer and returns, Close (or Flush) waits for every byte to be written
// and returns the first error w gave. It is not safe for concurrent use.
type writeBehind struct {
	w    io.Writer
	full chan []byte
	free chan []byte
	done chan struct{}
	err  error // w's first error; read after done
	cur  []byte
	shut bool
}

func newWriteBehind(w io.Writer) *writeBehind {
	b := &writeBehind{
		w:    w,
		full: make(chan []byte, pipeBuffers),
		free: make(chan []byte, pipeBuffers),
		done: make(chan struct{}),
	}
	for range pipeBuffers - 1 {
		b.free <- make([]byte, 0, pipeBufSize)
	}
	b.cur = make([]byte, 0, pipeBufSize)
	go b.run()
	return b
}

func (b *writeBehind) run() {
	defer close(b.done)
	for buf := range b.full {
		if b.err == nil {
			_, b.err = b.w.Write(buf)
		}
		b.free <- buf[:0]
	}
}

func (b *writeBehind) Write(p []byte) (int, error) {
	if b.shut {
		return 0, errors.New("write after close")
	}
	n := 0
	for len(p) > 0 {
		k := copy(b.cur[len(b.cur):cap(b.cur)], p)
		b.cur = b.cur[:len(b.cur)+k]
		p, n = p[k:], n+k
		if len(b.cur) == cap(b.cur) {
			b.full <- b.cur
			b.cur = <-b.free
		}
	}
	return n, nil
}

// Close hands over the last buffer, waits for the writing goroutine and
// returns w's first error. It does not close w.
func (b *writeBehind) Close() error {
	if !b.shut {
		b.shut = true
		if len(b.cur) > 0 {
			b.full <- b.cur
		}
		close(b.full)
	}
	<-b.done
	return b.err
}
