package promapi

import (
	"fmt"
	"io"
	"net/http"
)

// maxAnswerBytes bounds one answer from Prometheus, after decompression; a batch is at most
// maxBatchNamespaces canaries, about 16 MB. The client buffers an answer whole (growing its
// buffer by doubling), so the bound is about a third of what reading one may take at the peak:
// a Prometheus, or a proxy in front of it, answering more would otherwise take the daemon past
// its memory limit, for every team at once.
const maxAnswerBytes = 32 << 20

// bounded is a RoundTripper whose answers fail once they pass max bytes: too big is an error
// for the canaries that asked (they hold), never a crash.
type bounded struct {
	next http.RoundTripper
	max  int64
}

// RoundTrip implements http.RoundTripper.
func (b bounded) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := b.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if resp.ContentLength > b.max {
		resp.Body.Close()
		return nil, tooLarge(b.max)
	}
	resp.Body = &boundedBody{ReadCloser: resp.Body, left: b.max, max: b.max}
	return resp, nil
}

func tooLarge(max int64) error {
	return fmt.Errorf("the answer is larger than %d MiB: coalmine reads no more of it", max>>20)
}

// boundedBody reads at most max bytes, then fails unless the body ends there.
type boundedBody struct {
	io.ReadCloser
	left, max int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		n, err := b.ReadCloser.Read(one[:])
		switch {
		case n == 0 && err != nil:
			return 0, err // io.EOF: the answer ended at the bound
		case n == 0:
			return 0, nil
		}
		return 0, tooLarge(b.max)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
