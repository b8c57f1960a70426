package policies

import (
	"fmt"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/prometheus/prometheus/promql/parser"
)

// CounterSelector finds the raw counter behind a rendered errors or latency query. The judges
// that read counters interval by interval (sequential, mannwhitney) take the counter's series
// themselves and compute their own increases, without rate()'s or increase()'s extrapolation.
// q may be the selector itself, http_requests_total{...}, or the windowed form a threshold
// policy uses, sum by (version) (increase(http_requests_total{...}[5m])): then it is the
// selector inside.
func CounterSelector(q string) (string, error) {
	expr, err := parser.ParseExpr(q)
	if err != nil {
		return "", fmt.Errorf("promql: %w", err)
	}
	if sel := counterSelector(expr); sel != nil {
		return sel.String(), nil
	}
	return "", fmt.Errorf("the %s and %s judges read the raw counter: write a series selector such as "+
		"http_requests_total{...}, or sum by (...) (increase(SELECTOR[window])), not %s", JudgeSequential, JudgeMannWhitney, q)
}

func counterSelector(e parser.Expr) *parser.VectorSelector {
	switch e := e.(type) {
	case *parser.VectorSelector:
		return e
	case *parser.ParenExpr:
		return counterSelector(e.Expr)
	case *parser.AggregateExpr:
		if e.Op == parser.SUM {
			return counterSelector(e.Expr)
		}
	case *parser.Call:
		switch e.Func.Name {
		case "increase", "rate":
			if len(e.Args) == 1 {
				if m, ok := e.Args[0].(*parser.MatrixSelector); ok {
					if vs, ok := m.VectorSelector.(*parser.VectorSelector); ok {
						return vs
					}
				}
			}
		}
	}
	return nil
}

// IsSelector reports whether a rendered query is a bare series selector.
func IsSelector(q string) bool {
	expr, err := parser.ParseExpr(q)
	if err != nil {
		return false
	}
	_, ok := expr.(*parser.VectorSelector)
	return ok
}

// PodSelector reads what a metric of the pods source names: a metric and label matchers on the
// labels the pod itself exposes, in PromQL selector syntax (http_requests_total{code=~"5.."}).
// For a histogram, name it or its _bucket series.
func PodSelector(q string) ([]*labels.Matcher, error) {
	ms, err := parser.ParseMetricSelector(q)
	if err != nil {
		return nil, fmt.Errorf("the pods source takes a metric name and label matchers, like http_requests_total{code=~\"5..\"}: %w", err)
	}
	named := false
	for _, m := range ms {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			named = true
		}
	}
	if !named {
		return nil, fmt.Errorf("the pods source needs the metric's name, like http_requests_total{code=~\"5..\"}, got %s", q)
	}
	return ms, nil
}
