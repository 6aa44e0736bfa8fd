//go:build !linux

package upstream

import (
	"net"
	"net/http"
	"os"
)

// spliceState: bodies are read, never spliced, off Linux.
type spliceState struct{ length, moved int64 }

func (s *spliceState) set(net.Conn, *http.Response, func([]int, int) error) {}
func (s *spliceState) usable() bool                                         { return false }
func (s *spliceState) fromSocket(int) (int, error)                          { return 0, ErrNoSplice }
func (s *spliceState) toFile(*os.File, int64, int) error                    { return ErrNoSplice }
func (s *spliceState) close()                                               {}
func (s *spliceState) disable()                                             {}
