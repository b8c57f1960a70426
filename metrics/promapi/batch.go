package promapi

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/rs/zerolog"

	"github.com/coalmine/coalmine/metrics"
)

// maxBatchNamespaces bounds the canaries one batched query is for, so that its answer stays
// well within maxAnswerBytes: a raw-counter query of one canary of the seed app answers about
// 80 KB (11 pods, 4 series each, 7 buckets), 200 of them about 16 MB.
const maxBatchNamespaces = 200

// nsSentinel stands for the namespace in a query's family: two queries that differ only in it
// are one query over both namespaces.
const nsSentinel = "\x00coalmine-namespace\x00"

// Batcher sends queries that canaries of many releases share as one. Queries that are the same
// but for the namespace they select, asked for the same evaluation time within Delay of each
// other, become one query over all their namespaces, grouped by namespace as well, whose answer
// is split back per canary. So the queries per tick grow with policies, not with canaries.
type Batcher struct {
	prom   *Prometheus
	delay  time.Duration
	logger zerolog.Logger

	mu      sync.Mutex
	pending map[string]*batch
}

type batch struct {
	q          metrics.Query // the first member's query: the family's template
	at         time.Time
	namespaces []string
	done       chan struct{}
	once       sync.Once
	vec        model.Vector
	warnings   []string
	err        error
}

// NewBatcher batches p's queries, waiting up to delay for the other members of a batch.
func NewBatcher(p *Prometheus, delay time.Duration, logger zerolog.Logger) *Batcher {
	return &Batcher{prom: p, delay: delay, logger: logger, pending: map[string]*batch{}}
}

// Observe answers q at time at, from a batch when q has a family.
func (b *Batcher) Observe(ctx context.Context, q metrics.Query, at time.Time) (metrics.Observation, error) {
	vec, evalAt, warnings, batched, err := b.vector(ctx, q, at)
	if !batched {
		return b.prom.Observe(ctx, q, at)
	}
	if err != nil {
		return metrics.Observation{Metric: q.Metric, Kind: q.Kind, Query: q.PromQL, Time: at}, err
	}
	obs, err := metrics.Decode(q, vec)
	obs.Time, obs.Warnings = evalAt, warnings
	return obs, err
}

// Counters answers a counter query at time at, from a batch when q has a family.
func (b *Batcher) Counters(ctx context.Context, q metrics.Query, at time.Time) (metrics.Snapshot, error) {
	vec, evalAt, _, batched, err := b.vector(ctx, q, at)
	if !batched {
		return b.prom.Counters(ctx, q, at)
	}
	if err != nil {
		return metrics.Snapshot{Time: at}, err
	}
	return metrics.DecodeCounters(q, vec, evalAt)
}

// CountersRange is Prometheus.CountersRange: a replay is one query, never batched.
func (b *Batcher) CountersRange(ctx context.Context, q metrics.Query, start, end time.Time, step time.Duration) ([]metrics.Snapshot, error) {
	return b.prom.CountersRange(ctx, q, start, end, step)
}

// vector answers q from its batch, split back to q's namespace; batched is false when q has no
// family and must be asked alone.
func (b *Batcher) vector(ctx context.Context, q metrics.Query, at time.Time) (vec model.Vector, evalAt time.Time, warnings []string, batched bool, err error) {
	fam, err := family(q)
	if err != nil || fam == "" {
		return nil, at, nil, false, nil
	}
	key := fam + "\xff" + at.Truncate(time.Second).Format(time.RFC3339)
	b.mu.Lock()
	bt, ok := b.pending[key]
	if ok && len(bt.namespaces) >= maxBatchNamespaces && !slices.Contains(bt.namespaces, q.Namespace) {
		ok = false // full: this query starts the next batch
	}
	if !ok {
		bt = &batch{q: q, at: at, done: make(chan struct{})}
		b.pending[key] = bt
		time.AfterFunc(b.delay, func() { b.run(key, bt) })
	}
	if !slices.Contains(bt.namespaces, q.Namespace) {
		bt.namespaces = append(bt.namespaces, q.Namespace)
	}
	full := len(bt.namespaces) >= maxBatchNamespaces
	b.mu.Unlock()
	if full {
		go b.run(key, bt) // nothing more can join it: no need to wait
	}
	select {
	case <-bt.done:
	case <-ctx.Done():
		return nil, at, nil, true, fmt.Errorf("%w: metric %q: %w", metrics.ErrUnavailable, q.Metric, ctx.Err())
	}
	if bt.err != nil {
		return nil, at, nil, true, bt.err
	}
	var mine model.Vector
	for _, s := range bt.vec {
		if string(s.Metric[model.LabelName(q.NamespaceLabel)]) == q.Namespace {
			m := s.Metric.Clone()
			delete(m, model.LabelName(q.NamespaceLabel))
			mine = append(mine, &model.Sample{Metric: m, Value: s.Value, Timestamp: s.Timestamp})
		}
	}
	return mine, bt.at, bt.warnings, true, nil
}

func (b *Batcher) run(key string, bt *batch) {
	bt.once.Do(func() { b.send(key, bt) })
}

// send sends a batch's query, once, and answers its members.
func (b *Batcher) send(key string, bt *batch) {
	b.mu.Lock()
	if b.pending[key] == bt {
		delete(b.pending, key)
	}
	namespaces := slices.Clone(bt.namespaces)
	b.mu.Unlock()
	defer close(bt.done)
	promql, err := batchPromQL(bt.q, namespaces)
	if err != nil {
		bt.err = err
		return
	}
	timeout := b.prom.timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	v, warnings, err := b.prom.query(ctx, promql, bt.at)
	b.logger.Debug().Str("metric", bt.q.Metric).Int("namespaces", len(namespaces)).Err(err).Msg("batched query")
	if err != nil {
		bt.err = classify(bt.q.Metric, err)
		return
	}
	vec, ok := v.(model.Vector)
	if !ok {
		bt.err = fmt.Errorf("%w: metric %q: the batched query returned %s, want an instant vector", metrics.ErrUnexpectedSeries, bt.q.Metric, v.Type())
		return
	}
	bt.vec, bt.warnings = vec, warnings
}

// family is q's PromQL with its namespace replaced by a sentinel and namespace added to its
// groupings: the same for every query that differs only in the namespace. "" when q cannot be
// batched: it selects no namespace, or more than one.
func family(q metrics.Query) (string, error) {
	if q.Namespace == "" || q.NamespaceLabel == "" {
		return "", nil
	}
	expr, err := rewrite(q, func(m *labels.Matcher) (*labels.Matcher, error) {
		return labels.NewMatcher(labels.MatchEqual, m.Name, nsSentinel)
	})
	if err != nil || expr == nil {
		return "", err
	}
	return expr.String(), nil
}

// batchPromQL is q's PromQL over every namespace in namespaces, grouped by namespace too.
func batchPromQL(q metrics.Query, namespaces []string) (string, error) {
	quoted := make([]string, len(namespaces))
	for i, ns := range namespaces {
		quoted[i] = regexp.QuoteMeta(ns)
	}
	slices.Sort(quoted)
	re := strings.Join(quoted, "|")
	expr, err := rewrite(q, func(m *labels.Matcher) (*labels.Matcher, error) {
		return labels.NewMatcher(labels.MatchRegexp, m.Name, re)
	})
	if err != nil {
		return "", err
	}
	if expr == nil {
		return "", fmt.Errorf("metric %q: query cannot be batched", q.Metric)
	}
	return expr.String(), nil
}

// rewrite parses q's PromQL, replaces each namespace matcher with what replace gives, and keeps
// the namespace through every aggregation and vector matching that keeps the version. It
// returns nil when q has no namespace matcher or one for another namespace.
func rewrite(q metrics.Query, replace func(*labels.Matcher) (*labels.Matcher, error)) (parser.Expr, error) {
	expr, err := parser.ParseExpr(q.PromQL)
	if err != nil {
		return nil, fmt.Errorf("metric %q: %w", q.Metric, err)
	}
	found, foreign := false, false
	var rerr error
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			for i, m := range n.LabelMatchers {
				if m.Name != q.NamespaceLabel {
					continue
				}
				if m.Type != labels.MatchEqual || m.Value != q.Namespace {
					foreign = true
					continue
				}
				found = true
				nm, err := replace(m)
				if err != nil {
					rerr = err
				}
				n.LabelMatchers[i] = nm
			}
		case *parser.AggregateExpr:
			if !n.Without && slices.Contains(n.Grouping, q.VersionLabel) && !slices.Contains(n.Grouping, q.NamespaceLabel) {
				n.Grouping = append(n.Grouping, q.NamespaceLabel)
			}
		case *parser.BinaryExpr:
			if vm := n.VectorMatching; vm != nil && vm.On && slices.Contains(vm.MatchingLabels, q.VersionLabel) && !slices.Contains(vm.MatchingLabels, q.NamespaceLabel) {
				vm.MatchingLabels = append(vm.MatchingLabels, q.NamespaceLabel)
			}
		}
		return nil
	})
	if rerr != nil {
		return nil, rerr
	}
	if !found || foreign {
		return nil, nil
	}
	return expr, nil
}
