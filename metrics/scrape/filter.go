package scrape

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
)

// maxLineBytes bounds one line of a pod's text page.
const maxLineBytes = 64 << 10

// maxPodSamples bounds the sample lines kept of one pod's text page, in the families the policy
// reads: a real service has hundreds; a canary writing millions would hold the daemon's memory,
// for every team. The text parser reads a whole page before it returns a family, so the page is
// cut down as it streams in, before the parser sees it.
const maxPodSamples = 10_000

// familyFilter passes through only the lines of a text exposition that belong to the families
// named: their samples (a histogram's _bucket, _sum and _count; a counter's _total) and their
// HELP and TYPE lines. It fails on a line longer than maxLineBytes and once more than
// maxPodSamples samples have been kept.
type familyFilter struct {
	r        *bufio.Reader
	families []string
	pending  []byte
	kept     int
	err      error
}

func newFamilyFilter(r io.Reader, families []string) *familyFilter {
	return &familyFilter{r: bufio.NewReaderSize(r, maxLineBytes), families: families}
}

func (f *familyFilter) Read(p []byte) (int, error) {
	for len(f.pending) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		line, err := f.r.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			f.err = fmt.Errorf("a line longer than %d KiB", maxLineBytes>>10)
			return 0, f.err
		case err != nil:
			f.err = err // io.EOF, or the body's own error; a last line without \n still counts
		}
		if len(line) == 0 || !f.keep(line) {
			continue
		}
		f.pending = append(f.pending[:0], line...)
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

// keep reports whether a line belongs to a family kept, counting the samples.
func (f *familyFilter) keep(line []byte) bool {
	line = bytes.TrimLeft(line, " \t")
	if len(line) == 0 || line[0] == '\n' {
		return false
	}
	if line[0] == '#' {
		fields := bytes.Fields(line)
		return len(fields) >= 3 && (string(fields[1]) == "HELP" || string(fields[1]) == "TYPE") && f.named(fields[2])
	}
	end := bytes.IndexAny(line, "{ \t")
	if end < 0 {
		return false
	}
	if !f.named(line[:end]) {
		return false
	}
	if f.kept++; f.kept > maxPodSamples {
		f.err = fmt.Errorf("more than %d samples in the families the policy reads: coalmine keeps no more of one pod", maxPodSamples)
		return false
	}
	return true
}

// named reports whether a sample or family name is of a family kept.
func (f *familyFilter) named(name []byte) bool {
	if slices.Contains(f.families, string(name)) {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count", "_total", "_created"} {
		if base, ok := bytes.CutSuffix(name, []byte(suffix)); ok && slices.Contains(f.families, string(base)) {
			return true
		}
	}
	return false
}
