package policies

import (
	"strings"
	"testing"
)

func TestCounterSelector(t *testing.T) {
	tests := []struct {
		name, q, want, wantErr string
	}{
		{name: "a bare selector", q: `http_requests_total{app="a"}`, want: `http_requests_total{app="a"}`},
		{name: "the windowed form", q: `sum by (version) (increase(http_requests_total{app="a",code=~"5.."}[5m]))`, want: `http_requests_total{app="a",code=~"5.."}`},
		{name: "rate in parentheses", q: `(sum(rate(x_bucket{app="a"}[1m])))`, want: `x_bucket{app="a"}`},
		{name: "a ratio has no single counter", q: `sum(rate(x[1m])) / sum(rate(y[1m]))`, wantErr: "read the raw counter"},
		{name: "a max is not a sum of counters", q: `max by (version) (x)`, wantErr: "read the raw counter"},
		{name: "broken", q: `sum(`, wantErr: "promql"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CounterSelector(tt.q)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
