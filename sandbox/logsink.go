package sandbox

import (
	"io"
	"strings"
	"sync"
)

// tailBytes is how much of Prometheus' log is kept in memory for errors.
const tailBytes = 16 << 10

// logSink serialises Prometheus' stdout and stderr into the caller's writers
// and keeps the tail of both, so that errors can quote the log.
type logSink struct {
	mu   sync.Mutex
	tail []byte
}

// writer returns a writer that copies into w and the tail. Writes to w are
// serialised with every other writer of s, so Stdout and Stderr may be the
// same non-thread-safe writer.
func (s *logSink) writer(w io.Writer) io.Writer {
	return sinkWriter{s: s, w: w}
}

// lastLines returns at most the last n complete lines of the log.
func (s *logSink) lastLines(n int) string {
	s.mu.Lock()
	text, full := string(s.tail), len(s.tail) == tailBytes
	s.mu.Unlock()
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if full && len(lines) > 1 {
		lines = lines[1:] // the first line was cut
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// contains reports whether the kept tail contains sub.
func (s *logSink) contains(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Contains(string(s.tail), sub)
}

type sinkWriter struct {
	s *logSink
	w io.Writer
}

// Write never fails: an error would stop os/exec's copying goroutine and the
// next log line would kill Prometheus with SIGPIPE.
func (w sinkWriter) Write(b []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.tail = append(w.s.tail, b...)
	if over := len(w.s.tail) - tailBytes; over > 0 {
		w.s.tail = append(w.s.tail[:0], w.s.tail[over:]...)
	}
	if w.w != nil {
		_, _ = w.w.Write(b)
	}
	return len(b), nil
}
