package charts_test

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"text/template"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"
)

// The alerts the chart's PrometheusRule has; values.yaml and the README list them too.
var alertNames = []string{
	"CoalmineCanaryRolledBack",
	"CoalmineCanaryStuck",
	"CoalmineCanaryVerdictStuck",
	"CoalminePrometheusUnreachable",
	"CoalmineKubernetesAPIErrors",
	"CoalmineNoLeader",
	"CoalminePolicyReloadFailing",
}

// targetLabels are the labels Prometheus's scrape configuration attaches to every series
// (ServiceMonitor, PodMonitor, kubernetes-pods): a selector may use them on any metric.
var targetLabels = map[string]bool{"namespace": true, "pod": true, "job": true, "instance": true, "service": true, "endpoint": true, "container": true}

// prometheusRule is the part of monitoring.coreos.com/v1 PrometheusRule the chart writes.
type prometheusRule struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   map[string]any `json:"metadata"`
	Spec       struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for,omitempty"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

func TestPrometheusRule(t *testing.T) {
	h := newHelm(t, "")
	exported := exportedSeries(t)
	tests := []struct {
		name   string
		values string
		// A matcher every selector must have: the release's series only.
		selector *labels.Matcher
		// Labels every aggregation keeps.
		groupBy []string
		extra   map[string]string
	}{
		{"selected by namespace", "testdata/monitoring.yaml", labels.MustNewMatcher(labels.MatchEqual, "namespace", "coalmine"), []string{"namespace"}, map[string]string{"team": "platform"}},
		{"no selector, no grouping", "testdata/podmonitor.yaml", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := parseManifest(t, h.template(t, "coalmine", "-f", tt.values))
			u := objs.get("PrometheusRule", "coalmine")
			if u == nil {
				t.Fatalf("no PrometheusRule in %v", objs.ids())
			}
			b, err := json.Marshal(u.Object)
			if err != nil {
				t.Fatal(err)
			}
			var rule prometheusRule
			d := json.NewDecoder(bytes.NewReader(b))
			d.DisallowUnknownFields()
			if err := d.Decode(&rule); err != nil {
				t.Fatalf("PrometheusRule: %v", err)
			}
			var names []string
			for _, g := range rule.Spec.Groups {
				for _, r := range g.Rules {
					names = append(names, r.Alert)
					t.Run(r.Alert, func(t *testing.T) {
						expr, err := parser.ParseExpr(r.Expr)
						if err != nil {
							t.Fatalf("expr does not parse: %v\n%s", err, r.Expr)
						}
						for _, p := range checkExpr(expr, exported) {
							t.Error(p)
						}
						parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
							switch n := n.(type) {
							case *parser.VectorSelector:
								if tt.selector != nil && !slices.ContainsFunc(n.LabelMatchers, func(m *labels.Matcher) bool { return m.String() == tt.selector.String() }) {
									t.Errorf("%s lacks the release's selector %s", n, tt.selector)
								}
							case *parser.AggregateExpr:
								for _, l := range tt.groupBy {
									if n.Without || !slices.Contains(n.Grouping, l) {
										t.Errorf("%s does not keep the label %s", n, l)
									}
								}
							}
							return nil
						})
						if r.For != "" {
							if _, err := model.ParseDuration(r.For); err != nil {
								t.Errorf("for %q: %v", r.For, err)
							}
						}
						if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
							t.Errorf("severity %q, want critical, warning or info", s)
						}
						for k, v := range tt.extra {
							if r.Labels[k] != v {
								t.Errorf("label %s=%q, want %q (additionalLabels)", k, r.Labels[k], v)
							}
						}
						if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
							t.Errorf("annotations %v: want a summary and a description", r.Annotations)
						}
						for k, text := range r.Annotations {
							for _, p := range checkAlertTemplate(text, expr) {
								t.Errorf("annotation %s: %s", k, p)
							}
						}
					})
				}
			}
			if !slices.Equal(names, alertNames) {
				t.Errorf("alerts %q, want %q", names, alertNames)
			}
		})
	}
}

// checkExpr returns what in expr is not a series coalmine exports: unknown metric names, labels
// the metric lacks, label values the code never sets.
func checkExpr(expr parser.Expr, exported map[string]series) []string {
	var problems []string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		s, ok := exported[vs.Name]
		if !ok {
			problems = append(problems, vs.Name+": coalmine exports no such metric")
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName {
				continue
			}
			if !s.labels[m.Name] && !targetLabels[m.Name] {
				problems = append(problems, vs.Name+" has no label "+m.Name)
				continue
			}
			known := s.values[m.Name]
			if known == nil || (m.Type != labels.MatchEqual && m.Type != labels.MatchNotEqual) {
				continue
			}
			if !known[m.Value] {
				problems = append(problems, vs.Name+"{"+m.String()+"}: coalmine never sets "+m.Name+" to "+m.Value+" (it sets "+strings.Join(sortedKeys(known), ", ")+")")
			}
		}
		return nil
	})
	return problems
}

func sortedKeys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// checkAlertTemplate parses an annotation as Prometheus does (Go text/template with its
// functions) and checks that every $labels.x it shows is a label the alert keeps.
func checkAlertTemplate(text string, expr parser.Expr) []string {
	var problems []string
	noop := func(...any) any { return nil }
	funcs := template.FuncMap{}
	for _, f := range []string{"humanize", "humanize1024", "humanizeDuration", "humanizePercentage", "humanizeTimestamp",
		"query", "first", "label", "value", "strvalue", "args", "reReplaceAll", "safeHtml", "match", "title", "toUpper",
		"toLower", "graphLink", "tableLink", "sortByLabel", "pathPrefix", "externalURL", "parseDuration", "toTime",
		"stripPort", "stripDomain", "since"} {
		funcs[f] = noop
	}
	if _, err := template.New("").Funcs(funcs).Parse("{{$labels := .Labels}}{{$value := .Value}}" + text); err != nil {
		problems = append(problems, err.Error())
	}
	for _, m := range regexp.MustCompile(`\$labels\.(\w+)`).FindAllStringSubmatch(text, -1) {
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if a, ok := n.(*parser.AggregateExpr); ok && (a.Without || !slices.Contains(a.Grouping, m[1])) {
				problems = append(problems, "shows $labels."+m[1]+", which "+a.String()+" drops")
			}
			return nil
		})
	}
	return problems
}

// grafanaVars are the variables Grafana puts in a query, with a value that parses as PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "6h")

func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile(chart + "/dashboards/coalmine.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string            `json:"uid"`
		Title      string            `json:"title"`
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboards/coalmine.json: %v", err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Errorf("dashboard uid %q title %q: want both", dash.UID, dash.Title)
	}
	exported := exportedSeries(t)
	vars := map[string]bool{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = true
		q, _ := v.Query.(map[string]any)
		if v.Type != "query" {
			continue
		}
		// label_values(selector, label)
		m := regexp.MustCompile(`^label_values\((.+), *(\w+)\)$`).FindStringSubmatch(q["query"].(string))
		if m == nil {
			t.Errorf("variable %s: query %v is not label_values(selector, label)", v.Name, q["query"])
			continue
		}
		expr, err := parser.ParseExpr(m[1])
		if err != nil {
			t.Errorf("variable %s: %v", v.Name, err)
			continue
		}
		for _, p := range checkExpr(expr, exported) {
			t.Errorf("variable %s: %s", v.Name, p)
		}
		if vs, ok := expr.(*parser.VectorSelector); ok && !exported[vs.Name].labels[m[2]] && !targetLabels[m[2]] {
			t.Errorf("variable %s: %s has no label %s", v.Name, vs.Name, m[2])
		}
	}
	if !vars["datasource"] {
		t.Error("dashboard has no datasource variable")
	}

	type panel struct {
		ID         int               `json:"id"`
		Type       string            `json:"type"`
		Title      string            `json:"title"`
		Datasource map[string]string `json:"datasource"`
		GridPos    struct{ X, Y, W, H int }
		Targets    []struct {
			Expr       string            `json:"expr"`
			RefID      string            `json:"refId"`
			Datasource map[string]string `json:"datasource"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	ids := map[int]bool{}
	queries := 0
	var walk func([]json.RawMessage)
	walk = func(raws []json.RawMessage) {
		for _, r := range raws {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatal(err)
			}
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.GridPos.X < 0 || p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("panel %q: gridPos %+v outside the 24 columns", p.Title, p.GridPos)
			}
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, q := range p.Targets {
				for _, ds := range []map[string]string{p.Datasource, q.Datasource} {
					if ds["uid"] != "${datasource}" {
						t.Errorf("panel %q: datasource %v, want the ${datasource} variable", p.Title, ds)
					}
				}
				queries++
				e := grafanaVars.Replace(q.Expr)
				for _, v := range regexp.MustCompile(`\$(\w+)`).FindAllStringSubmatch(e, -1) {
					if !vars[v[1]] {
						t.Errorf("panel %q: query uses $%s, which the dashboard does not define", p.Title, v[1])
					}
				}
				expr, err := parser.ParseExpr(e)
				if err != nil {
					t.Errorf("panel %q: query does not parse: %v\n%s", p.Title, err, q.Expr)
					continue
				}
				for _, prob := range checkExpr(expr, exported) {
					t.Errorf("panel %q: %s", p.Title, prob)
				}
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	if queries < 10 {
		t.Errorf("%d queries; the dashboard has lost its panels", queries)
	}

	// The chart ships the file as it is.
	objs := parseManifest(t, newHelm(t, "").template(t, "coalmine", "-f", "testdata/monitoring.yaml"))
	var cm corev1.ConfigMap
	objs.decode(t, "ConfigMap", "coalmine-dashboard", &cm)
	if got := cm.Data["coalmine.json"]; strings.TrimSpace(got) != strings.TrimSpace(string(raw)) {
		t.Errorf("the dashboard ConfigMap's coalmine.json differs from dashboards/coalmine.json")
	}
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v, want grafana_dashboard=1 for Grafana's sidecar", cm.Labels)
	}
}

// TestAlertsDocumented keeps the list of alerts in values.yaml and the README.
func TestAlertsDocumented(t *testing.T) {
	for _, path := range []string{chart + "/values.yaml", "../README.md"} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range alertNames {
			if !bytes.Contains(b, []byte(a)) {
				t.Errorf("%s does not mention the alert %s", path, a)
			}
		}
	}
}
