package testenv

import (
	"fmt"
	"net"
	"syscall"
	"testing"
)

// StuckClient sends a GET of path to addr over a connection with a 4 KiB
// receive buffer and never reads the answer, so the server's writes to it
// block once the buffers are full. The connection closes with the test.
func StuckClient(t testing.TB, addr, path string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	conn, err := d.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: proxy\r\n\r\n", path)
	return conn
}
