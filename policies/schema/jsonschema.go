// Package schema derives the JSON Schema of a CanaryPolicy document, for editors (the YAML
// language server) and kubeconform, from the CustomResourceDefinition's openAPIV3Schema, which
// controller-gen generates from the policy types. canarypolicy.schema.json beside it is the
// result; `make generate` rewrites it and `make test` checks it is current.
package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"go.yaml.in/yaml/v3"
)

// ID is the schema's $id; editors show it, nothing fetches it.
const ID = "https://coalmine.dev/schemas/canarypolicy.v1alpha1.json"

// FromCRD returns the JSON Schema (draft-07) of the objects of a CustomResourceDefinition with
// one version: its openAPIV3Schema, made strict (no unknown fields where the API server would
// prune them), with apiVersion and kind fixed, metadata described as a policy file writes it,
// no status, and OpenAPI's boolean exclusive bounds turned into draft-07's numeric ones.
func FromCRD(crd []byte) ([]byte, error) {
	var doc struct {
		Spec struct {
			Group string `yaml:"group"`
			Names struct {
				Kind string `yaml:"kind"`
			} `yaml:"names"`
			Versions []struct {
				Name   string `yaml:"name"`
				Schema struct {
					OpenAPIV3Schema map[string]any `yaml:"openAPIV3Schema"`
				} `yaml:"schema"`
			} `yaml:"versions"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(crd, &doc); err != nil {
		return nil, fmt.Errorf("read CustomResourceDefinition: %w", err)
	}
	if len(doc.Spec.Versions) != 1 || doc.Spec.Versions[0].Schema.OpenAPIV3Schema == nil {
		return nil, fmt.Errorf("want a CustomResourceDefinition with one version and its schema, got %d versions", len(doc.Spec.Versions))
	}
	v := doc.Spec.Versions[0]
	root := convert(v.Schema.OpenAPIV3Schema).(map[string]any)
	props := root["properties"].(map[string]any)
	props["apiVersion"] = map[string]any{"type": "string", "enum": []any{doc.Spec.Group + "/" + v.Name}}
	props["kind"] = map[string]any{"type": "string", "enum": []any{doc.Spec.Names.Kind}}
	props["metadata"] = metadata()
	delete(props, "status") // the daemon's; a file does not write it
	root["required"] = []any{"apiVersion", "kind", "metadata", "spec"}
	root["$schema"] = "http://json-schema.org/draft-07/schema#"
	root["$id"] = ID
	root["title"] = doc.Spec.Names.Kind + " " + doc.Spec.Group + "/" + v.Name

	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// metadata is what a policy file may write under metadata (policies.Metadata); the API server
// fills the rest.
func metadata() map[string]any {
	strings := map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}}
	return map[string]any{
		"type":                 "object",
		"additionalProperties": false,
		"required":             []any{"name"},
		"properties": map[string]any{
			"name": map[string]any{
				"type": "string", "maxLength": 253,
				"pattern": `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`,
			},
			"namespace": map[string]any{
				"type": "string", "maxLength": 63,
				"pattern":     `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`,
				"description": "The policy's namespace: it acts only there. spec.target.namespace defaults to it and may only repeat it.",
			},
			"labels":      strings,
			"annotations": strings,
		},
	}
}

// convert rewrites one OpenAPI v3 schema node as draft-07, recursively.
func convert(n any) any {
	switch n := n.(type) {
	case map[string]any:
		out := map[string]any{}
		for _, k := range slices.Sorted(maps.Keys(n)) {
			v := n[k]
			switch k {
			case "properties":
				props := map[string]any{}
				for name, p := range v.(map[string]any) {
					props[name] = convert(p)
				}
				out[k] = props
			case "items", "additionalProperties":
				out[k] = convert(v)
			case "exclusiveMinimum", "exclusiveMaximum":
				// OpenAPI v3.0: a boolean beside minimum/maximum; draft-07: the bound itself.
				if v == true {
					bound := map[string]string{"exclusiveMinimum": "minimum", "exclusiveMaximum": "maximum"}[k]
					out[k] = n[bound]
				}
			case "minimum", "maximum":
				ex := map[string]string{"minimum": "exclusiveMinimum", "maximum": "exclusiveMaximum"}[k]
				if n[ex] != true {
					out[k] = v
				}
			case "x-kubernetes-preserve-unknown-fields", "x-kubernetes-list-type", "x-kubernetes-list-map-keys":
				// Kubernetes' own; editors ignore them, and a strict validator may not.
			default:
				out[k] = v
			}
		}
		// The API server prunes fields its schema does not name; the loader refuses them. Either
		// way an unknown field is a mistake to show in the editor.
		if out["type"] == "object" && out["properties"] != nil && out["additionalProperties"] == nil && n["x-kubernetes-preserve-unknown-fields"] != true {
			out["additionalProperties"] = false
		}
		return out
	case []any:
		out := make([]any, len(n))
		for i, v := range n {
			out[i] = convert(v)
		}
		return out
	}
	return n
}
