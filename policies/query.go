package policies

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

// QueryVars are the variables a PromQL template sees. Every value taken from the policy is
// already a quoted PromQL string (`"default"`, not `default`), so a template cannot splice a
// value in unescaped: write `namespace={{.Namespace}}`, or use {{.Selector}}.
type QueryVars struct {
	// Namespace, App, Baseline and Canary are quoted PromQL strings.
	Namespace, App, Baseline, Canary string
	// Versions is a quoted regular expression matching exactly the baseline and canary versions.
	Versions string
	// NamespaceLabel, AppLabel and VersionLabel are label names (validated, never quoted).
	NamespaceLabel, AppLabel, VersionLabel string
	// Selector matches the release's series of both versions:
	// namespace="default",app="my-app",version=~"v1\\.0\\.0|v2\\.0\\.0".
	Selector string
	// Window is the analysis window as a PromQL duration, e.g. 5m.
	Window string
}

// Vars returns the template variables for this policy's target, with the given window.
func (p *Policy) Vars(window time.Duration) QueryVars {
	t := p.Spec.Target
	versions := []string{regexp.QuoteMeta(t.Baseline.Version), regexp.QuoteMeta(t.Canary.Version)}
	re := strconv.Quote(strings.Join(versions, "|"))
	return QueryVars{
		Namespace:      strconv.Quote(t.Namespace),
		App:            strconv.Quote(t.App),
		Baseline:       strconv.Quote(t.Baseline.Version),
		Canary:         strconv.Quote(t.Canary.Version),
		Versions:       re,
		NamespaceLabel: t.Labels.Namespace,
		AppLabel:       t.Labels.App,
		VersionLabel:   t.Labels.Version,
		Selector: fmt.Sprintf("%s=%s,%s=%s,%s=~%s",
			t.Labels.Namespace, strconv.Quote(t.Namespace),
			t.Labels.App, strconv.Quote(t.App),
			t.Labels.Version, re),
		Window: model.Duration(window).String(),
	}
}

// maxRenderedQuery bounds a rendered query. Templates are written by others, and a few bytes of
// text/template can write without end; a real query is well under a kilobyte.
const maxRenderedQuery = 64 << 10

// Render executes a PromQL template with vars. The template may use the variables, if, with and
// the comparison and logic functions; range, define, block, template and the functions that
// format or escape (printf, html, ...) are refused, so that rendering is bounded by the
// template's own length: `{{range 100000000000}}` would never end, and nested printf or html
// calls grow their output exponentially.
func Render(tmpl string, vars QueryVars) (string, error) {
	t, err := template.New("query").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", fmt.Errorf("template: %w", cleanTemplateError(err))
	}
	if err := checkTemplate(t); err != nil {
		return "", fmt.Errorf("template: %w", err)
	}
	w := cappedWriter{max: maxRenderedQuery}
	if err := t.Execute(&w, vars); err != nil {
		return "", fmt.Errorf("template: %w", cleanTemplateError(err))
	}
	return w.b.String(), nil
}

// cappedWriter is a strings.Builder that refuses to grow past max bytes.
type cappedWriter struct {
	b   strings.Builder
	max int
}

func (w *cappedWriter) Write(p []byte) (int, error) {
	if w.b.Len()+len(p) > w.max {
		return 0, fmt.Errorf("the rendered query is longer than %d bytes", w.max)
	}
	return w.b.Write(p)
}

// CheckPromQL parses a rendered query and requires it to yield an instant vector.
func CheckPromQL(q string) error {
	expr, err := parser.ParseExpr(q)
	if err != nil {
		return fmt.Errorf("promql: %w", err)
	}
	if expr.Type() != parser.ValueTypeVector {
		return fmt.Errorf("promql: must yield an instant vector, got %s", expr.Type())
	}
	return nil
}

// Templates returns a metric's PromQL templates by field name, in a fixed order.
func (m Metric) Templates() []NamedTemplate {
	var ts []NamedTemplate
	add := func(field, tmpl string) {
		if tmpl != "" {
			ts = append(ts, NamedTemplate{Field: field, Template: tmpl})
		}
	}
	add("requests", m.Requests)
	add("errors", m.Errors)
	add("buckets", m.Buckets)
	add("query", m.Query)
	return ts
}

// NamedTemplate is one PromQL template of a metric and the field that holds it.
type NamedTemplate struct {
	Field    string
	Template string
}

var templateErrPrefix = regexp.MustCompile(`^template: query:`)

func cleanTemplateError(err error) error {
	msg := templateErrPrefix.ReplaceAllString(err.Error(), "")
	return fmt.Errorf("%s", strings.TrimSpace(strings.TrimPrefix(msg, ":")))
}
