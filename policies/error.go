package policies

import (
	"fmt"
	"strings"
)

// FieldError is one problem with a policy, located by file, line and field path.
type FieldError struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:", e.Line)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(" ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one or more policies. Its Error method prints one per line.
type Errors []*FieldError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// parentPath cuts the last element off a field path: "a.b[2]" -> "a.b", "a.b" -> "a".
func parentPath(p string) (string, bool) {
	if p == "" {
		return "", false
	}
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return "", true
	}
	return p[:i], true
}

func joinPath(parent, field string) string {
	if parent == "" {
		return field
	}
	return parent + "." + field
}
