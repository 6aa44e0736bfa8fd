package testenv

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSickUpstream(t *testing.T) {
	dir := t.TempDir()
	body := bytes.Repeat([]byte("0123456789"), 100) // 1000 bytes
	if err := os.WriteFile(filepath.Join(dir, "f"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	u := NewSickUpstream(t, dir)
	other := NewSickUpstream(t, dir)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(timeout time.Duration) (*http.Response, []byte, error) {
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.URL()+"f", nil)
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	tests := []struct {
		name  string
		fault Fault
		check func(t *testing.T, resp *http.Response, b []byte, err error, took time.Duration)
	}{
		{"healthy", HealthyFault(), func(t *testing.T, resp *http.Response, b []byte, err error, _ time.Duration) {
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(b, body) {
				t.Errorf("got %v %v, %d bytes", resp, err, len(b))
			}
		}},
		{"hang", HangFault(), func(t *testing.T, resp *http.Response, _ []byte, err error, _ time.Duration) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("hang answered: %v %v", resp, err)
			}
		}},
		{"stall", StallFault(10), func(t *testing.T, resp *http.Response, b []byte, err error, _ time.Duration) {
			if resp == nil || resp.StatusCode != 200 || !errors.Is(err, context.DeadlineExceeded) || !bytes.Equal(b, body[:10]) {
				t.Errorf("stall: %v, %q, %v", resp, b, err)
			}
		}},
		{"drip", DripFault(), func(t *testing.T, resp *http.Response, b []byte, err error, _ time.Duration) {
			if resp == nil || !errors.Is(err, context.DeadlineExceeded) || len(b) < 1 || len(b) > 3 {
				t.Errorf("drip: got %d bytes in 1.5s (%v)", len(b), err)
			}
		}},
		{"slow", SlowFault(1000, 0), func(t *testing.T, resp *http.Response, b []byte, err error, took time.Duration) {
			if err != nil || !bytes.Equal(b, body) || took < 700*time.Millisecond {
				t.Errorf("slow: %d bytes in %v (%v)", len(b), took, err)
			}
		}},
		{"slow spares small files", SlowFault(1, 1<<20), func(t *testing.T, resp *http.Response, b []byte, err error, took time.Duration) {
			if err != nil || !bytes.Equal(b, body) || took > time.Second {
				t.Errorf("slow with MinSize: %d bytes in %v (%v)", len(b), took, err)
			}
		}},
		{"500", Status500Fault(), func(t *testing.T, resp *http.Response, _ []byte, err error, _ time.Duration) {
			if err != nil || resp.StatusCode != 500 {
				t.Errorf("got %v %v", resp, err)
			}
		}},
		{"reset", ResetFault(), func(t *testing.T, resp *http.Response, _ []byte, err error, _ time.Duration) {
			if err == nil || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("reset: %v %v", resp, err)
			}
		}},
		{"404", NotFoundFault(), func(t *testing.T, resp *http.Response, _ []byte, err error, _ time.Duration) {
			if err != nil || resp.StatusCode != 404 {
				t.Errorf("got %v %v", resp, err)
			}
		}},
		{"redirect", RedirectFault(other.URL()), func(t *testing.T, resp *http.Response, _ []byte, err error, _ time.Duration) {
			if err != nil || resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != other.URL()+"f" {
				t.Errorf("got %v %v", resp, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u.Set(tt.fault)
			start := time.Now()
			resp, b, err := get(1500 * time.Millisecond)
			tt.check(t, resp, b, err, time.Since(start))
		})
	}
	u.Heal()
	u.SetPath("/f", NotFoundFault())
	before := u.Hits("/f") // at least one per case; net/http retries a reset GET
	if resp, _, err := get(time.Second); err != nil || resp.StatusCode != 404 {
		t.Errorf("SetPath: %v %v", resp, err)
	}
	if n := u.Hits("/f"); n != before+1 || before < len(tests) {
		t.Errorf("Hits(/f) = %d after %d, want one more and at least %d before", n, before, len(tests))
	}

	// Close releases a hanging handler at once.
	u.Set(HangFault())
	before = u.Hits("/f")
	go get(time.Minute)
	for u.Hits("/f") == before {
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	u.Close()
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close with a hanging request took %v", took)
	}
}
