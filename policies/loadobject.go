package policies

import (
	"errors"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// LoadObject reads a CanaryPolicy object as the API server serves it (its fields decoded from
// JSON, as in an unstructured.Unstructured) through the file loader: the same defaults, strict
// decoding and validation, so an object is refused in the same words as a file. Only what a
// file may write is read (apiVersion, kind, metadata's name, namespace and labels, spec); the
// rest of metadata and the status are the server's. Problems come back as Errors naming the
// field, with no file or line, and the policy as far as it could be read.
func LoadObject(obj map[string]any) (*Policy, error) {
	meta := map[string]any{}
	if m, ok := obj["metadata"].(map[string]any); ok {
		for _, k := range []string{"name", "namespace", "labels"} {
			if v, ok := m[k]; ok {
				meta[k] = v
			}
		}
	}
	doc := map[string]any{"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": meta, "spec": obj["spec"]}
	data, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode object: %w", err)
	}
	ps, err := Load("", data)
	// The lines are those of a document written here, not of anything a person wrote.
	var fe Errors
	if errors.As(err, &fe) {
		for _, e := range fe {
			e.Line = 0
		}
	}
	if len(ps) != 1 {
		return nil, err
	}
	return ps[0], err
}
