package simulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxScenarioBytes bounds a PUT /scenario body.
const maxScenarioBytes = 1 << 20

// AdminHandler serves the running scenario and pods:
//
//	GET /scenario  the scenario as YAML, or as JSON when the Accept header asks for application/json
//	PUT /scenario  replace the scenario (YAML, or JSON with Content-Type application/json); 204 on
//	               success, 400 when the scenario is invalid, 500 when it cannot be applied
//	GET /targets   the running pods as a JSON array of Target
func (s *Simulator) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /scenario", s.getScenario)
	mux.HandleFunc("PUT /scenario", s.putScenario)
	mux.HandleFunc("GET /targets", s.getTargets)
	return mux
}

func (s *Simulator) getScenario(w http.ResponseWriter, r *http.Request) {
	sc := s.Scenario()
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		writeJSON(w, sc)
		return
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(sc); err != nil {
		http.Error(w, fmt.Sprintf("encode scenario: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(buf.Bytes()) // the client is gone if this fails
}

func (s *Simulator) putScenario(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxScenarioBytes))
	if err != nil {
		http.Error(w, fmt.Sprintf("read scenario: %v", err), http.StatusBadRequest)
		return
	}
	var sc Scenario
	if mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mediaType == "application/json" {
		sc, err = parseJSON(body)
	} else {
		sc, err = Parse("request", body)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := s.Apply(sc); err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, ErrStopped) {
			status = http.StatusServiceUnavailable
		}
		http.Error(w, err.Error(), status)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Simulator) getTargets(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, s.Targets())
}

// parseJSON decodes a JSON scenario as strictly as Parse decodes YAML.
func parseJSON(data []byte) (Scenario, error) {
	s := defaultScenario()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Scenario{}, fmt.Errorf("request: %w", err)
	}
	if err := s.Validate(); err != nil {
		return Scenario{}, fmt.Errorf("request: %w", err)
	}
	return s, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, fmt.Sprintf("encode response: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(data, '\n')) // the client is gone if this fails
}
