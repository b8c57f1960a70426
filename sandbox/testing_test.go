package sandbox

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// fatalRecorder records Fatal instead of failing the real test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Fatal(args ...any) {
	r.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestStartPrometheusTFailsWithoutBinary(t *testing.T) {
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		StartPrometheusT(r, PrometheusOptions{Binary: "/nonexistent/prometheus"})
	}()
	<-done
	want := "prometheus not found; run scripts/install-prometheus.sh or make test"
	if !strings.HasPrefix(r.msg, want) {
		t.Fatalf("fatal message %q, want it to start with %q", r.msg, want)
	}
}
