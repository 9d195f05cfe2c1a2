package keepalive

import (
	"net/http"
	"testing"
	"time"
)

func TestInterval(t *testing.T) {
	for _, tt := range []struct {
		header string
		want   time.Duration
	}{
		{"", Default},
		{"50", 50 * time.Second},
		{" 1 ", time.Second},
		{"0", Default},
		{"-5", Default},
		{"1.5", Default},
		{"soon", Default},
		{"100000", MaxSeconds * time.Second},
		{"99999999999999999999999", Default},
	} {
		h := http.Header{}
		if tt.header != "" {
			h.Set(Header, tt.header)
		}
		if got := Interval(h); got != tt.want {
			t.Errorf("Interval(%q) = %v, want %v", tt.header, got, tt.want)
		}
	}
}
