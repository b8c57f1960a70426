package sandbox

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// DefaultWaitTimeout bounds WaitForTargets and WaitForSamples when ctx has no
// deadline, so a forgotten timeout cannot hang a test until `go test -timeout`.
const DefaultWaitTimeout = 30 * time.Second

// pollInterval is how often the Wait methods ask Prometheus again.
const pollInterval = 200 * time.Millisecond

// Query runs an instant query at the current time and returns its vector.
func (p *Prometheus) Query(ctx context.Context, query string) (model.Vector, error) {
	v, _, err := p.api.Query(ctx, query, time.Now())
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", query, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("query %q: result is a %s, not a vector", query, v.Type())
	}
	return vec, nil
}

// WaitForTargets polls /api/v1/targets until at least n active targets have
// health "up".
func (p *Prometheus) WaitForTargets(ctx context.Context, n int) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	last := "no answer yet"
	return poll(ctx, func() (bool, error) {
		res, err := p.api.Targets(ctx)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		up, states := 0, make([]string, 0, len(res.Active))
		for _, t := range res.Active {
			if t.Health == v1.HealthGood {
				up++
			}
			s := fmt.Sprintf("%s %s", t.ScrapeURL, t.Health)
			if t.LastError != "" {
				s += ": " + t.LastError
			}
			states = append(states, s)
		}
		if up >= n {
			return true, nil
		}
		sort.Strings(states)
		last = fmt.Sprintf("%d of %d active targets up [%s]", up, len(res.Active), strings.Join(states, "; "))
		return false, nil
	}, func(err error) error {
		return fmt.Errorf("wait for %d targets up: %s: %w", n, last, err)
	})
}

// WaitForSamples polls the instant query until its result has at least n
// series and returns that result. A query Prometheus rejects as invalid fails
// at once instead of being retried.
func (p *Prometheus) WaitForSamples(ctx context.Context, query string, n int) (model.Vector, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	var (
		vec  model.Vector
		last = "no answer yet"
	)
	err := poll(ctx, func() (bool, error) {
		v, err := p.Query(ctx, query)
		var apiErr *v1.Error
		if errors.As(err, &apiErr) && apiErr.Type == v1.ErrBadData {
			return false, err
		}
		if err != nil {
			last = err.Error()
			return false, nil
		}
		vec, last = v, fmt.Sprintf("%d series", len(v))
		return len(v) >= n, nil
	}, func(err error) error {
		return fmt.Errorf("wait for %d series of %q: got %s: %w", n, query, last, err)
	})
	if err != nil {
		return nil, err
	}
	return vec, nil
}

// poll calls check now and then every pollInterval until it reports done or
// an error, or ctx ends; timedOut wraps ctx's error.
func poll(ctx context.Context, check func() (bool, error), timedOut func(error) error) error {
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		done, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return timedOut(ctx.Err())
		case <-ticker.C:
		}
	}
}

// withDefaultTimeout adds DefaultWaitTimeout to a ctx without a deadline.
func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultWaitTimeout)
}

// waitProcessReady polls check every 50 ms until it reports ready, the process exits (done
// closes: exited says how), ctx ends or timeout passes; what names the endpoint and logs gives
// the process's last lines for the error. Prometheus and VictoriaMetrics start alike.
func waitProcessReady(ctx context.Context, timeout time.Duration, what string, done <-chan struct{}, exited func() error,
	logs func() string, check func(context.Context) (bool, string)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	last := "no answer yet"
	for {
		select {
		case <-done:
			return exited()
		case <-ctx.Done():
			return fmt.Errorf("wait for %s (%s): %w; last log lines:\n%s", what, last, ctx.Err(), logs())
		case <-ticker.C:
			ready, status := check(ctx)
			if ready {
				return nil
			}
			last = status
		}
	}
}
