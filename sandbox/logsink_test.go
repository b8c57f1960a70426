package sandbox

import (
	"bytes"
	"strings"
	"testing"
)

func TestLogSinkLastLines(t *testing.T) {
	long := strings.Repeat("x", tailBytes)
	tests := []struct {
		name   string
		writes []string
		n      int
		want   string
	}{
		{name: "empty", n: 3, want: ""},
		{name: "fewer lines than asked", writes: []string{"a\n", "b\n"}, n: 3, want: "a\nb"},
		{name: "last n", writes: []string{"a\nb\n", "c\nd\n"}, n: 2, want: "c\nd"},
		{name: "partial last line", writes: []string{"a\nb"}, n: 1, want: "b"},
		{name: "cut first line dropped", writes: []string{long, "\nlast\n"}, n: 5, want: "last"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var copied bytes.Buffer
			s := &logSink{}
			w := s.writer(&copied)
			for _, b := range tt.writes {
				if n, err := w.Write([]byte(b)); n != len(b) || err != nil {
					t.Fatalf("write: %d, %v", n, err)
				}
			}
			if got := s.lastLines(tt.n); got != tt.want {
				t.Errorf("lastLines(%d) = %q, want %q", tt.n, got, tt.want)
			}
			if copied.String() != strings.Join(tt.writes, "") {
				t.Errorf("the caller's writer did not get every byte")
			}
		})
	}
}
