package cache_test

import (
	"testing"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/cache/cachetest"
)

func TestMemory(t *testing.T) {
	cachetest.Run(t, func(t *testing.T) cache.Store {
		s := cache.NewMemory()
		t.Cleanup(func() { s.Close() })
		return s
	})
}
