package metrics

import (
	"fmt"
	"github.com/prometheus/prometheus/model/labels"
	"strings"
	"time"

	"github.com/coalmine/coalmine/policies"
)

// PartLabel tells the requests series of an errors query from its errors series. Both are asked
// in one query, so they are evaluated at the same instant.
const PartLabel = "coalmine_part"

// Query is one metric's rendered PromQL and what is needed to read its answer.
type Query struct {
	Metric       string
	Kind         policies.MetricKind
	PromQL       string
	VersionLabel string
	Baseline     string
	Canary       string
	// Namespace and NamespaceLabel say which namespace the query selects; a Batcher uses them to
	// ask for many namespaces at once.
	Namespace      string
	NamespaceLabel string
	// Counters is set on a query for raw counter series (NewCounterQuery), read with Counters.
	Counters bool
	// App and AppLabel say which app's pods the pods source scrapes.
	App, AppLabel string
	// Parts are what the pods source reads of each pod: a metric name and label matchers per
	// part (requests and errors, or bucket).
	Parts []Part
	// Families are the metric families the pods source keeps of each pod's page: those every
	// streamed metric of the policy reads. The rest is dropped as it is decoded.
	Families []string
	// SplitLabel, set for an A/A comparison of a version with itself (Baseline == Canary),
	// puts each series in an arm by a hash of this label's value (e.g. pod): half the pods
	// play the baseline, half the canary.
	SplitLabel string
}

// baseQuery is the query of metric m without its PromQL: what it reads and for which versions.
func baseQuery(p *policies.Policy, m policies.Metric) (Query, error) {
	t := p.Spec.Target
	if t.Baseline.Version == "" || t.Canary.Version == "" {
		return Query{}, fmt.Errorf("metric %q: the baseline and canary versions must be known (spec.target.*.version)", m.Name)
	}
	return Query{Metric: m.Name, Kind: m.Kind, VersionLabel: t.Labels.Version, Baseline: t.Baseline.Version, Canary: t.Canary.Version,
		Namespace: t.Namespace, NamespaceLabel: t.Labels.Namespace, App: t.App, AppLabel: t.Labels.App}, nil
}

// partsPromQL asks for an errors metric's requests and errors in one query, told apart by
// PartLabel, so that both are evaluated at the same instant.
func partsPromQL(requests, errors string) string {
	return fmt.Sprintf("label_replace(%s, %q, \"requests\", \"\", \"\")\nor\nlabel_replace(%s, %q, \"errors\", \"\", \"\")", requests, PartLabel, errors, PartLabel)
}

// Part is one series selector of a pods-source query.
type Part struct {
	Name     string // requests, errors or bucket
	Matchers []*labels.Matcher
}

// NewQuery renders a metric's templates for the policy's target over window. One query returns
// both versions.
func NewQuery(p *policies.Policy, m policies.Metric, window time.Duration) (Query, error) {
	q, err := baseQuery(p, m)
	if err != nil {
		return Query{}, err
	}
	t := p.Spec.Target
	vars := p.Vars(window)
	render := func(field, tmpl string) (string, error) {
		q, err := policies.Render(tmpl, vars)
		if err != nil {
			return "", fmt.Errorf("metric %q: %s: %w", m.Name, field, err)
		}
		return strings.TrimSpace(q), nil
	}
	switch m.Kind {
	case policies.KindErrors:
		var req, errs string
		if req, err = render("requests", m.Requests); err != nil {
			return Query{}, err
		}
		if errs, err = render("errors", m.Errors); err != nil {
			return Query{}, err
		}
		// A policy written for the counter-reading judges names bare counters; over a window
		// they are their increase.
		if policies.IsSelector(req) {
			req = fmt.Sprintf("sum by (%s) (increase(%s[%s]))", t.Labels.Version, req, vars.Window)
		}
		if policies.IsSelector(errs) {
			errs = fmt.Sprintf("sum by (%s) (increase(%s[%s]))", t.Labels.Version, errs, vars.Window)
		}
		q.PromQL = partsPromQL(req, errs)
	case policies.KindLatency:
		if q.PromQL, err = render("buckets", m.Buckets); err == nil && policies.IsSelector(q.PromQL) {
			q.PromQL = fmt.Sprintf("sum by (%s, le) (increase(%s[%s]))", t.Labels.Version, q.PromQL, vars.Window)
		}
	case policies.KindValue:
		q.PromQL, err = render("query", m.Query)
	default:
		err = fmt.Errorf("metric %q: unknown kind %q", m.Name, m.Kind)
	}
	if err != nil {
		return Query{}, err
	}
	return q, nil
}
