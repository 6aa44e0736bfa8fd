package upstream

import (
	"sort"
	"sync"
	"time"
)

// maxHealth bounds the per-base records: mirror lists that change keep
// replacing bases, and a record of a base no list names any more is
// dropped first.
const maxHealth = 1024

// MirrorStatus is one base's health as the admin API shows it.
type MirrorStatus struct {
	Base        string    `json:"base"`   // redacted
	Source      string    `json:"source"` // "url", "metalink" or "mirrorlist"
	Root        string    `json:"root,omitempty"`
	Failures    int64     `json:"failures"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	CoolingDown bool      `json:"cooling_down"` // failed recently: tried after the healthy ones
	Order       int       `json:"order"`        // position in the current try order (per root for list mirrors)
}

type baseHealth struct {
	failures  int64
	lastErr   string
	lastErrAt time.Time
	lastOK    time.Time
	seen      time.Time // last time a candidate list named it
}

// health is the measured state of every base: the one owner of "which
// mirror failed when".
type health struct {
	mu       sync.Mutex
	coolDown time.Duration
	now      func() time.Time
	m        map[string]*baseHealth
}

func newHealth(coolDown time.Duration) *health {
	return &health{coolDown: coolDown, now: time.Now, m: map[string]*baseHealth{}}
}

func (h *health) get(base string) *baseHealth {
	b := h.m[base]
	if b == nil {
		if len(h.m) >= maxHealth {
			h.pruneLocked()
		}
		b = &baseHealth{}
		h.m[base] = b
	}
	return b
}

// pruneLocked drops the half of the records seen least recently.
func (h *health) pruneLocked() {
	type kv struct {
		k string
		t time.Time
	}
	all := make([]kv, 0, len(h.m))
	for k, v := range h.m {
		all = append(all, kv{k, v.seen})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].t.Before(all[j].t) })
	for _, e := range all[:len(all)/2] {
		delete(h.m, e.k)
	}
}

func (h *health) failed(base string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := h.get(base)
	b.failures++
	b.lastErr = err.Error()
	b.lastErrAt = h.now()
}

func (h *health) ok(base string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.get(base).lastOK = h.now()
}

func (h *health) coolingLocked(b *baseHealth, now time.Time) bool {
	return b != nil && b.lastErrAt.After(b.lastOK) && now.Sub(b.lastErrAt) < h.coolDown
}

// order sorts candidates: those that did not fail recently first, each
// group in the given preference order; the cooling ones by how long ago
// they failed (longest ago first).
func (h *health) order(cands []candidate) []candidate {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	out := make([]candidate, len(cands))
	copy(out, cands)
	cool := make([]bool, len(out))
	at := make([]time.Time, len(out))
	for i, c := range out {
		b := h.get(c.base)
		b.seen = now
		cool[i] = h.coolingLocked(b, now)
		at[i] = b.lastErrAt
	}
	idx := make([]int, len(out))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool {
		a, b := idx[i], idx[j]
		if cool[a] != cool[b] {
			return !cool[a]
		}
		if cool[a] {
			return at[a].Before(at[b])
		}
		return false
	})
	for i, k := range idx {
		out[i] = cands[k]
	}
	return out
}

// status reports the records of the given candidates, in try order.
func (h *health) status(cands []candidate) []MirrorStatus {
	ordered := h.order(cands)
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	out := make([]MirrorStatus, 0, len(ordered))
	for i, c := range ordered {
		b := h.get(c.base)
		out = append(out, MirrorStatus{
			Base: redact(c.base), Source: c.source, Root: c.root,
			Failures: b.failures, LastError: b.lastErr, LastErrorAt: b.lastErrAt,
			CoolingDown: h.coolingLocked(b, now), Order: i,
		})
	}
	return out
}
