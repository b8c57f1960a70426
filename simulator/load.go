package simulator

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads and validates the scenario file at path.
func Load(path string) (Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Scenario{}, fmt.Errorf("read scenario %q: %w", path, err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a YAML scenario strictly: unknown fields are errors. Name, usually
// the file path, prefixes errors, with the line of the offending field when it can be found.
func Parse(name string, data []byte) (Scenario, error) {
	s := defaultScenario()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return Scenario{}, fmt.Errorf("%s: empty scenario", name)
		}
		return Scenario{}, fmt.Errorf("%s: %w", name, err)
	}
	if err := s.Validate(); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			if line := lineOf(data, fe.field); line > 0 {
				return Scenario{}, fmt.Errorf("%s:%d: %w", name, line, err)
			}
		}
		return Scenario{}, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

// lineOf returns the line of the YAML node at a field path such as apps[0].versions[1].pods, or
// of its deepest existing ancestor when the field is absent, or 0 when the document has no nodes.
func lineOf(data []byte, field string) int {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 {
		return 0
	}
	n := doc.Content[0]
	line := n.Line
	steps := strings.Split(strings.ReplaceAll(strings.ReplaceAll(field, "]", ""), "[", "."), ".")
	for _, step := range steps {
		if n = child(n, step); n == nil {
			break
		}
		line = n.Line
	}
	return line
}

// child returns the value under a mapping key, or the element at a sequence index, or nil.
func child(n *yaml.Node, step string) *yaml.Node {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == step {
				return n.Content[i+1]
			}
		}
	case yaml.SequenceNode:
		if i, err := strconv.Atoi(step); err == nil && i >= 0 && i < len(n.Content) {
			return n.Content[i]
		}
	}
	return nil
}
