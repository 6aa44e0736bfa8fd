//go:build !linux

package cache

// releaseMapped is a no-op where there is no /proc/self/maps.
func releaseMapped(dir string) {}
