package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The two floors below answer one question for row 3 of bench/run.sh:
// how fast can anything on this machine hand a cold 256 MiB file from a
// loopback upstream to a loopback client? They speak just enough HTTP/1.1
// for one GET of a file with a Content-Length, which is all row 3 asks.
//
// splicerelay moves the body from upstream's socket to the client's with
// splice(2) through a pipe: the bytes never enter user space and nothing
// keeps them. No relay can do less work.
//
// spoolrelay is the least a proxy that keeps the bytes can do: splice(2)
// from upstream's socket into an unlinked spool file, and sendfile(2)
// from that file to the client as the bytes arrive. No verification, no
// store, no second client: what is left is one copy into the page cache.

func splicerelay(args []string) error {
	return floorServe(args, func(w http.ResponseWriter, up *floorUpstream) error {
		rf, ok := w.(io.ReaderFrom)
		if !ok {
			return errors.New("response writer has no ReadFrom")
		}
		if _, err := w.Write(up.pre); err != nil {
			return err
		}
		// net/http hands a LimitedReader over a *net.TCPConn to the
		// client connection's ReadFrom, which splices.
		_, err := rf.ReadFrom(&io.LimitedReader{R: up.conn, N: up.rest})
		return err
	})
}

func spoolrelay(args []string) error {
	if len(args) != 3 {
		usage()
	}
	dir := args[2]
	return floorServe(args[:2], func(w http.ResponseWriter, up *floorUpstream) error {
		return spoolThrough(w, up, dir)
	})
}

// floorUpstream is upstream's answer to one GET: its open connection, the
// body bytes already read with the headers, and how many are still in
// the socket.
type floorUpstream struct {
	conn *net.TCPConn
	pre  []byte
	rest int64
}

func floorServe(args []string, body func(http.ResponseWriter, *floorUpstream) error) error {
	if len(args) != 2 { // ADDR UPSTREAM
		usage()
	}
	u, err := url.Parse(args[1])
	if err != nil {
		return err
	}
	h := func(w http.ResponseWriter, r *http.Request) {
		up, err := floorGet(u.Host, r.URL.RequestURI())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer up.conn.Close()
		w.Header().Set("Content-Length", strconv.FormatInt(int64(len(up.pre))+up.rest, 10))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		if err := body(w, up); err != nil {
			fmt.Fprintln(os.Stderr, "benchutil:", r.URL.Path, err)
		}
	}
	srv := &http.Server{Addr: args[0], Handler: http.HandlerFunc(h), ReadHeaderTimeout: 30 * time.Second}
	return srv.ListenAndServe()
}

func floorGet(host, uri string) (*floorUpstream, error) {
	c, err := net.Dial("tcp", host)
	if err != nil {
		return nil, err
	}
	conn := c.(*net.TCPConn)
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", uri, host); err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || resp.ContentLength < 0 || len(resp.TransferEncoding) > 0 {
		conn.Close()
		return nil, fmt.Errorf("upstream: %s, length %d, encoding %v: not a plain 200", resp.Status, resp.ContentLength, resp.TransferEncoding)
	}
	pre, _ := br.Peek(br.Buffered())
	pre = append([]byte(nil), pre...)
	return &floorUpstream{conn: conn, pre: pre, rest: resp.ContentLength - int64(len(pre))}, nil
}

// spoolThrough splices upstream into the spool on one goroutine and sends
// the spool on this one, a section at a time as it grows.
func spoolThrough(w http.ResponseWriter, up *floorUpstream, dir string) error {
	rf, ok := w.(io.ReaderFrom)
	if !ok {
		return errors.New("response writer has no ReadFrom")
	}
	spool, err := os.CreateTemp(dir, "floor-*")
	if err != nil {
		return err
	}
	os.Remove(spool.Name())
	defer spool.Close()
	total := int64(len(up.pre)) + up.rest
	// As the proxy does; a file system without it only costs more.
	_ = unix.Fallocate(int(spool.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, total)
	if _, err := spool.WriteAt(up.pre, 0); err != nil {
		return err
	}
	p := &spoolProgress{n: int64(len(up.pre))}
	p.cond = sync.NewCond(&p.mu)
	received := make(chan struct{})
	go func() {
		defer close(received)
		p.end(spliceInto(up, spool, p))
	}()
	// The receiver uses the spool's descriptor: it ends (its socket
	// closed) before the spool is closed.
	defer func() {
		up.conn.Close()
		<-received
	}()
	// sendfile reads at the file's own offset: a second descriptor.
	out, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", spool.Fd()))
	if err != nil {
		return err
	}
	defer out.Close()
	var off int64
	for off < total {
		avail, err := p.wait(off)
		if err != nil {
			return err
		}
		if _, err := out.Seek(off, io.SeekStart); err != nil {
			return err
		}
		n, err := rf.ReadFrom(&io.LimitedReader{R: out, N: avail - off})
		off += n
		if err != nil {
			return err
		}
	}
	return nil
}

type spoolProgress struct {
	mu   sync.Mutex
	cond *sync.Cond
	n    int64
	err  error
	done bool
}

func (p *spoolProgress) add(n int64) {
	p.mu.Lock()
	p.n += n
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *spoolProgress) end(err error) {
	p.mu.Lock()
	p.err, p.done = err, true
	p.cond.Broadcast()
	p.mu.Unlock()
}

// wait returns how far the spool is written once it is past off.
func (p *spoolProgress) wait(off int64) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.n <= off && !p.done {
		p.cond.Wait()
	}
	if p.n > off {
		return p.n, nil
	}
	if p.err == nil {
		p.err = io.ErrUnexpectedEOF
	}
	return 0, p.err
}

// spliceInto moves upstream's remaining bytes into the spool through a
// pipe, waiting on the socket through the runtime's poller.
func spliceInto(up *floorUpstream, spool *os.File, p *spoolProgress) error {
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return err
	}
	defer unix.Close(pipe[0])
	defer unix.Close(pipe[1])
	const chunk = 1 << 20
	if _, err := unix.FcntlInt(uintptr(pipe[0]), unix.F_SETPIPE_SZ, chunk); err != nil {
		return err
	}
	rc, err := up.conn.SyscallConn()
	if err != nil {
		return err
	}
	off, rest, sfd := int64(len(up.pre)), up.rest, int(spool.Fd())
	for rest > 0 {
		var n int64
		var serr error
		err := rc.Read(func(fd uintptr) bool {
			n, serr = unix.Splice(int(fd), nil, pipe[1], nil, int(min(rest, chunk)), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			return serr != syscall.EAGAIN
		})
		switch {
		case err != nil:
			return err
		case serr != nil:
			return serr
		case n == 0:
			return io.ErrUnexpectedEOF
		}
		rest -= n
		for left := n; left > 0; {
			m, err := unix.Splice(pipe[0], nil, sfd, &off, int(left), unix.SPLICE_F_MOVE)
			if err != nil {
				return err
			}
			left -= m
			p.add(m)
		}
	}
	return nil
}
