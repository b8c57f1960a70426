package charts_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

	"github.com/coalmine/coalmine/analyzer"
	"github.com/coalmine/coalmine/buildinfo"
)

// series is what a PromQL selector may ask of one exported series name.
type series struct {
	labels map[string]bool
	// values holds a label's possible values where the code fixes them; a label without an
	// entry takes any value (a policy's name).
	values map[string]map[string]bool
}

// exportedSeries returns every series name coalmine's daemon exports on /metrics, with its
// labels and, where the code fixes them, their values. The daemon's own metrics are read from
// daemon/metric.go's source (its constructor, the one place they are named) and the label values
// from the literals passed to WithLabelValues across daemon/; the rest are the collectors `coalmine
// run` registers beside them (Go runtime, process, coalmine_build_info), gathered for real.
func exportedSeries(t *testing.T) map[string]series {
	t.Helper()
	out := map[string]series{}
	add := func(name string, labels []string, kind string) {
		s := series{labels: map[string]bool{}, values: map[string]map[string]bool{}}
		for _, l := range labels {
			s.labels[l] = true
		}
		switch kind {
		case "Histogram":
			out[name+"_sum"], out[name+"_count"] = s, s
			b := series{labels: map[string]bool{"le": true}, values: s.values}
			for l := range s.labels {
				b.labels[l] = true
			}
			out[name+"_bucket"] = b
		case "Summary":
			out[name+"_sum"], out[name+"_count"] = s, s
			q := series{labels: map[string]bool{"quantile": true}, values: s.values}
			for l := range s.labels {
				q.labels[l] = true
			}
			out[name] = q
		default:
			out[name] = s
		}
	}

	// The daemon's metrics: newSelfMetrics returns &selfMetrics{field: f.NewKind(Opts{Name: ...},
	// []string{labels...}), ...}.
	fset := token.NewFileSet()
	paths, err := filepath.Glob("../daemon/*.go")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*ast.File{}
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Base(p)] = f
	}
	metricFile := files["metric.go"]
	if metricFile == nil {
		t.Fatal("daemon/metric.go not found")
	}
	type field struct {
		name   string
		labels []string
	}
	fields := map[string]field{}
	ast.Inspect(metricFile, func(n ast.Node) bool {
		kv, ok := n.(*ast.KeyValueExpr)
		if !ok {
			return true
		}
		key, ok1 := kv.Key.(*ast.Ident)
		call, ok2 := kv.Value.(*ast.CallExpr)
		if !ok1 || !ok2 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || !strings.HasPrefix(sel.Sel.Name, "New") || len(call.Args) == 0 {
			return true
		}
		kind := strings.TrimSuffix(strings.TrimPrefix(sel.Sel.Name, "New"), "Vec")
		opts, ok := call.Args[0].(*ast.CompositeLit)
		if !ok {
			return true
		}
		var name string
		for _, e := range opts.Elts {
			if o, ok := e.(*ast.KeyValueExpr); ok && identName(o.Key) == "Name" {
				name = stringLit(o.Value)
			}
		}
		var labels []string
		if len(call.Args) > 1 {
			if l, ok := call.Args[1].(*ast.CompositeLit); ok {
				for _, e := range l.Elts {
					labels = append(labels, stringLit(e))
				}
			}
		}
		if name == "" {
			t.Errorf("daemon/metric.go: metric %s has no literal Name", key.Name)
			return true
		}
		fields[key.Name] = field{name: name, labels: labels}
		add(name, labels, kind)
		return false
	})
	if len(fields) == 0 {
		t.Fatal("daemon/metric.go: no metric found in its constructor")
	}

	// Label values: x.<field>.WithLabelValues(args...) anywhere in daemon/. A literal is one
	// value; an identifier is every literal assigned to it in the same function; anything else
	// leaves the label open, unless the analyzer names its values below.
	open := map[string]bool{}
	for _, f := range files {
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != "WithLabelValues" {
					return true
				}
				fld, ok := fields[identName(sel.X)]
				if !ok {
					return true
				}
				for i, arg := range call.Args {
					if i >= len(fld.labels) {
						break
					}
					label := fld.labels[i]
					vals := literalValues(fn.Body, arg)
					if vals == nil {
						open[fld.name+"/"+label] = true
						continue
					}
					for _, suffix := range []string{"", "_sum", "_count", "_bucket"} {
						if s, ok := out[fld.name+suffix]; ok {
							if s.values[label] == nil {
								s.values[label] = map[string]bool{}
							}
							for _, v := range vals {
								s.values[label][v] = true
							}
						}
					}
				}
				return true
			})
		}
	}
	// Labels whose values come from the analyzer's types.
	typed := map[string][]string{
		"outcome": {string(analyzer.OutcomePromoted), string(analyzer.OutcomeRolledBack), string(analyzer.OutcomeInconclusive),
			string(analyzer.OutcomeUnavailable), string(analyzer.OutcomeStopped)},
		"verdict": {string(analyzer.Pass), string(analyzer.Fail), string(analyzer.Inconclusive)},
	}
	for key := range open {
		name, label, _ := strings.Cut(key, "/")
		vals, ok := typed[label]
		for _, suffix := range []string{"", "_sum", "_count", "_bucket"} {
			s, exists := out[name+suffix]
			if !exists {
				continue
			}
			if !ok {
				delete(s.values, label) // any value
				continue
			}
			if s.values[label] == nil {
				s.values[label] = map[string]bool{}
			}
			for _, v := range vals {
				s.values[label][v] = true
			}
		}
	}

	// What cmd/coalmine/run.go registers beside the daemon's metrics.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildinfo.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		var labels []string
		if len(mf.Metric) > 0 {
			for _, lp := range mf.Metric[0].Label {
				labels = append(labels, lp.GetName())
			}
		}
		kind := map[dto.MetricType]string{dto.MetricType_HISTOGRAM: "Histogram", dto.MetricType_SUMMARY: "Summary"}[mf.GetType()]
		add(mf.GetName(), labels, kind)
	}
	return out
}

// identName is the name of an identifier or the selected name of x.y.
func identName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return e.Sel.Name
	}
	return ""
}

func stringLit(e ast.Expr) string {
	if l, ok := e.(*ast.BasicLit); ok && l.Kind == token.STRING {
		if s, err := strconv.Unquote(l.Value); err == nil {
			return s
		}
	}
	return ""
}

// literalValues returns the string values arg can take: itself if a literal, every literal
// assigned to it in body if an identifier only ever assigned literals, else nil.
func literalValues(body *ast.BlockStmt, arg ast.Expr) []string {
	if s := stringLit(arg); s != "" {
		return []string{s}
	}
	id, ok := arg.(*ast.Ident)
	if !ok {
		return nil
	}
	var vals []string
	onlyLiterals := true
	ast.Inspect(body, func(n ast.Node) bool {
		as, ok := n.(*ast.AssignStmt)
		if !ok {
			return true
		}
		for i, lhs := range as.Lhs {
			if l, ok := lhs.(*ast.Ident); ok && l.Name == id.Name && i < len(as.Rhs) {
				if s := stringLit(as.Rhs[i]); s != "" {
					vals = append(vals, s)
				} else {
					onlyLiterals = false
				}
			}
		}
		return true
	})
	if !onlyLiterals || len(vals) == 0 {
		return nil
	}
	return vals
}
