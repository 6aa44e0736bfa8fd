package upstream

import (
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// pipeSize is what the splice pipe is asked to hold: one step of SpliceTo
// moves at most this much.
const pipeSize = 1 << 20

// spliceState is what lets a body bypass user space: upstream's TCP
// connection, the body's length, and the pipe the bytes pass through
// (made at the first step, closed with the body).
type spliceState struct {
	conn   syscall.RawConn // nil: the body cannot be spliced
	length int64
	moved  int64                            // bytes spliced so far
	pipe2  func(fds []int, flags int) error // makes the pipe

	mu     sync.Mutex // the pipe, against Close from another goroutine
	r, w   *os.File
	room   int // the pipe's capacity
	closed bool
}

// set records conn when resp's body is the raw rest of an HTTP/1.1
// message of known length on it: no TLS, no chunking, no decoding.
func (s *spliceState) set(conn net.Conn, resp *http.Response, pipe2 func([]int, int) error) {
	tc, ok := conn.(*net.TCPConn)
	if !ok || resp.ProtoMajor != 1 || resp.ContentLength <= 0 ||
		len(resp.TransferEncoding) > 0 || resp.Uncompressed {
		return
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	if pipe2 == nil {
		pipe2 = unix.Pipe2
	}
	s.conn, s.length, s.pipe2 = rc, resp.ContentLength, pipe2
}

func (s *spliceState) usable() bool { return s.conn != nil }

// pipe returns the pipe, making it at the first call.
func (s *spliceState) pipe() (r, w *os.File, room int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, 0, os.ErrClosed
	}
	if s.r == nil {
		var fds [2]int
		if err := s.pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
			return nil, nil, 0, err
		}
		s.r, s.w = os.NewFile(uintptr(fds[0]), "splice-r"), os.NewFile(uintptr(fds[1]), "splice-w")
		// A smaller pipe (the system's limit) only makes steps smaller.
		size, err := unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, pipeSize)
		if err != nil {
			size, _ = unix.FcntlInt(uintptr(fds[0]), unix.F_GETPIPE_SZ, 0)
		}
		s.room = max(size, 4096)
	}
	return s.r, s.w, s.room, nil
}

// fromSocket splices up to want bytes from the socket into the empty
// pipe, waiting for the socket through the runtime's poller (which wakes
// it when the transport closes the connection on a stall).
func (s *spliceState) fromSocket(want int) (int, error) {
	_, w, room, err := s.pipe()
	if err != nil {
		return 0, localError{err}
	}
	wc, err := w.SyscallConn()
	if err != nil {
		return 0, localError{err}
	}
	want = min(want, room)
	var n int64
	var serr, cerr error
	err = s.conn.Read(func(sfd uintptr) bool {
		if cerr = wc.Control(func(pfd uintptr) {
			n, serr = unix.Splice(int(sfd), nil, int(pfd), nil, want, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		}); cerr != nil {
			return true
		}
		// The pipe is empty at each step, so EAGAIN is the socket's.
		return serr != unix.EAGAIN
	})
	switch {
	case cerr != nil:
		return 0, localError{cerr}
	case err != nil:
		return 0, err
	case serr == unix.EINVAL || serr == unix.ENOSYS || serr == unix.EPERM || serr == unix.EOPNOTSUPP || serr == unix.ENOMEM:
		// splice(2) is not allowed or not possible here (a kernel or a
		// sandbox without it): this side's failure.
		return 0, localError{&os.SyscallError{Syscall: "splice", Err: serr}}
	case serr != nil:
		return 0, serr
	case n == 0:
		return 0, io.ErrUnexpectedEOF // the connection ended before the body
	}
	return int(n), nil
}

// toFile empties the pipe's n bytes into file at off.
func (s *spliceState) toFile(file *os.File, off int64, n int) error {
	r, _, _, err := s.pipe()
	if err != nil {
		return err
	}
	rc, err := r.SyscallConn()
	if err != nil {
		return err
	}
	fc, err := file.SyscallConn()
	if err != nil {
		return err
	}
	for n > 0 {
		var m int64
		var serr error
		if cerr := rc.Control(func(pfd uintptr) {
			if cerr := fc.Control(func(ffd uintptr) {
				m, serr = unix.Splice(int(pfd), nil, int(ffd), &off, n, unix.SPLICE_F_MOVE)
			}); cerr != nil {
				serr = cerr
			}
		}); cerr != nil {
			return cerr
		}
		switch {
		case serr == unix.EINTR:
			continue
		case serr != nil:
			return &os.PathError{Op: "splice", Path: file.Name(), Err: serr}
		case m == 0:
			return io.ErrShortWrite
		}
		n -= int(m)
	}
	return nil
}

// disable turns splicing off for the rest of the body.
func (s *spliceState) disable() {
	s.conn = nil
	s.close()
}

func (s *spliceState) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.r != nil {
		s.r.Close()
		s.w.Close()
	}
}
