//go:build !linux

package view

// lowPriority runs fn; threads get a lower priority on Linux only.
func lowPriority(fn func()) { fn() }
