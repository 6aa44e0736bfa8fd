package main

import (
	"fmt"
	"net"
	"os"
)

// notifySocketEnv names the datagram socket of the service manager
// (systemd's sd_notify protocol).
const notifySocketEnv = "NOTIFY_SOCKET"

// sdNotify sends state (e.g. "READY=1") to the service manager over the
// unix datagram socket named by $NOTIFY_SOCKET, as sd_notify(3) does. An
// unset variable means no service manager listens: sdNotify does nothing
// and returns nil. A name starting with '@' is an abstract socket; Go's
// net package maps it to the leading NUL byte itself.
func sdNotify(state string) error {
	name := os.Getenv(notifySocketEnv)
	if name == "" {
		return nil
	}
	if name[0] != '/' && name[0] != '@' {
		return fmt.Errorf("%s=%q: not an absolute path or an abstract socket name", notifySocketEnv, name)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}
