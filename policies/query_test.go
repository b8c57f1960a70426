package policies

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

const requestsTemplate = `sum by ({{.VersionLabel}}) (increase(http_requests_total{ {{.Selector}}, code=~"5.." }[{{.Window}}]))`

func policyFor(ns, app, baseline, canary string) *Policy {
	p := Default()
	p.Spec.Target.Namespace = ns
	p.Spec.Target.App = app
	p.Spec.Target.Baseline.Version = baseline
	p.Spec.Target.Canary.Version = canary
	return &p
}

// checkRendered parses a rendered query and requires that its meaning is the template's: one
// sum by version over one selector whose matchers hold exactly the given values.
func checkRendered(t *testing.T, q, ns, app, baseline, canary string) {
	t.Helper()
	expr, err := parser.ParseExpr(q)
	if err != nil {
		t.Fatalf("rendered query does not parse: %v\n%s", err, q)
	}
	agg, ok := expr.(*parser.AggregateExpr)
	if !ok || agg.Op != parser.SUM || len(agg.Grouping) != 1 || agg.Grouping[0] != "version" {
		t.Fatalf("top of the query changed: %s", expr)
	}
	var sels []*parser.VectorSelector
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			sels = append(sels, vs)
		}
		return nil
	})
	if len(sels) != 1 {
		t.Fatalf("want one selector, got %d: %s", len(sels), expr)
	}
	got := map[string]*labels.Matcher{}
	for _, m := range sels[0].LabelMatchers {
		got[m.Name] = m
	}
	if m := got["namespace"]; m == nil || m.Type != labels.MatchEqual || m.Value != ns {
		t.Errorf("namespace matcher = %v, want = %q", m, ns)
	}
	if m := got["app"]; m == nil || m.Type != labels.MatchEqual || m.Value != app {
		t.Errorf("app matcher = %v, want = %q", m, app)
	}
	m := got["version"]
	if m == nil || m.Type != labels.MatchRegexp {
		t.Fatalf("version matcher = %v, want a regexp", m)
	}
	if !m.Matches(baseline) || !m.Matches(canary) {
		t.Errorf("version matcher %v does not match %q and %q", m, baseline, canary)
	}
	for _, other := range []string{baseline + "x", "x" + canary, "", "anything"} {
		if other != baseline && other != canary && m.Matches(other) {
			t.Errorf("version matcher %v also matches %q", m, other)
		}
	}
	if got["code"] == nil || got["code"].Value != "5.." {
		t.Errorf("the template's own matcher changed: %v", got["code"])
	}
}

func TestRenderEscapesValues(t *testing.T) {
	tests := []struct {
		name, ns, app, baseline, canary string
	}{
		{"plain", "default", "my-app", "v1.0.0", "v2.0.0"},
		{"injection through a version", "default", "my-app", "v1.0.0", `v1"} or vector(1) #`},
		{"injection through the namespace", `x"} or on() vector(1) or up{a="`, "my-app", "v1", "v2"},
		{"backslashes and quotes", "default", `a\"b`, `\`, `"`},
		{"regex metacharacters", "default", "my-app", "v1.*", "v2|v3"},
		{"newlines and unicode", "default", "my-app", "v1\nv2", "vé\u2028"},
		{"empty-looking", "default", "my-app", " ", "  "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := policyFor(tt.ns, tt.app, tt.baseline, tt.canary)
			q, err := Render(requestsTemplate, p.Vars(5*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			checkRendered(t, q, tt.ns, tt.app, tt.baseline, tt.canary)
		})
	}
}

func TestRenderVars(t *testing.T) {
	p := policyFor("default", "my-app", "v1.0.0", "v2.0.0")
	tests := []struct {
		name, tmpl, want string
	}{
		{"selector", "{{.Selector}}", `namespace="default",app="my-app",version=~"v1\\.0\\.0|v2\\.0\\.0"`},
		{"quoted values", "{{.Namespace}} {{.App}} {{.Baseline}} {{.Canary}}", `"default" "my-app" "v1.0.0" "v2.0.0"`},
		{"label names", "{{.NamespaceLabel}} {{.AppLabel}} {{.VersionLabel}}", "namespace app version"},
		{"window", "{{.Window}}", "5m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Render(tt.tmpl, p.Vars(5*time.Minute))
			if err != nil || got != tt.want {
				t.Errorf("Render(%q) = %q, %v; want %q", tt.tmpl, got, err, tt.want)
			}
		})
	}
	if _, err := Render("{{.Nope}}", p.Vars(time.Minute)); err == nil || !strings.Contains(err.Error(), "Nope") {
		t.Errorf("unknown variable: got %v", err)
	}
}

// TestRenderIsBounded shows that rendering a template written by someone else ends, and soon:
// what loops, recurses or multiplies its output is refused before it runs (were it run, the
// range case alone would never end), and what is left cannot write more than 64 KiB.
func TestRenderIsBounded(t *testing.T) {
	p := policyFor("default", "my-app", "v1.0.0", "v2.0.0")
	vars := p.Vars(5 * time.Minute)
	refused := []struct {
		name, tmpl, want string
	}{
		{"range over a number", "up{{range 100000000000}}{{end}}", "1:10: range is not allowed"},
		{"range with break", "{{range 3}}{{break}}{{end}}up", "range is not allowed"},
		{"recursion", `{{define "q"}}{{template "q" .}}{{template "q" .}}{{end}}{{template "q" .}}`, "define and block are not allowed"},
		{"block", `{{block "q" .}}up{{end}}`, "define and block are not allowed"},
		{"nested escapes", `{{html (html (html (html .Selector)))}}`, `function "html" is not allowed`},
		{"printf widths", `{{printf "%0999999d" 1}}`, `function "printf" is not allowed`},
		{"a function in an if", `{{if (print .Window)}}up{{end}}`, `function "print" is not allowed`},
		{"a function in a with's else", `{{with .Window}}up{{else}}{{js .App}}{{end}}`, `function "js" is not allowed`},
		{"a call", `{{call .Window}}`, `function "call" is not allowed`},
		{"output past 64 KiB", "up" + strings.Repeat("{{.Selector}}", 2000), "the rendered query is longer than 65536 bytes"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			q, err := Render(tt.tmpl, vars)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Render(%.60q) = %.60q, %v; want an error with %q", tt.tmpl, q, err, tt.want)
			}
		})
	}
	allowed := []struct {
		name, tmpl, want string
	}{
		{"if and eq", `{{if eq .VersionLabel "version"}}up{{else}}down{{end}}`, "up"},
		{"with, a variable and len", `{{with $w := .Window}}{{if gt (len $w) 1}}{{$w}}{{end}}{{end}}`, "5m"},
		{"logic", `{{if and (ne .App "") (not (lt 2 1))}}{{.App}}{{end}}`, `"my-app"`},
		{"a comment", `{{/* the selector */}}{{.NamespaceLabel}}`, "namespace"},
	}
	for _, tt := range allowed {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := Render(tt.tmpl, vars); err != nil || got != tt.want {
				t.Errorf("Render(%q) = %q, %v; want %q", tt.tmpl, got, err, tt.want)
			}
		})
	}
}

// FuzzRender checks that no namespace, app or version value can change a query's meaning.
func FuzzRender(f *testing.F) {
	f.Add("default", "my-app", "v1.0.0", "v2.0.0")
	f.Add("default", "my-app", "v1.0.0", `v1"} or vector(1) #`)
	f.Add(`ns\`, `"`, "a|b", "(c)")
	f.Fuzz(func(t *testing.T, ns, app, baseline, canary string) {
		if !utf8.ValidString(ns) || !utf8.ValidString(app) || !utf8.ValidString(baseline) || !utf8.ValidString(canary) {
			return // label values are UTF-8 in Prometheus
		}
		if baseline == canary {
			return
		}
		p := policyFor(ns, app, baseline, canary)
		q, err := Render(requestsTemplate, p.Vars(5*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		checkRendered(t, q, ns, app, baseline, canary)
	})
}

// FuzzLoad feeds arbitrary bytes to the loader: it must never panic, and whatever it accepts must
// validate again and render every template.
func FuzzLoad(f *testing.F) {
	for _, file := range []string{"examples/my-app.yaml", "testdata/minimal.good.yaml", "testdata/value-and-latency.good.yaml", "testdata/unknown-field.bad.yaml", "testdata/http-headers.bad.yaml"} {
		data, err := readFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := Load("fuzz.yaml", data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		for _, p := range ps {
			if errs := p.Validate(); len(errs) > 0 {
				t.Fatalf("accepted policy fails validation: %v", errs)
			}
		}
	})
}
