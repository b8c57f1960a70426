package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestRunExitCodes(t *testing.T) {
	scenario := filepath.Join("..", "..", "testdata", "scenarios", "healthy.yaml")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{name: "help", args: []string{"--help"}, wantCode: 0, wantStderr: "Usage: coalmine-sim --scenario FILE"},
		{name: "no scenario", args: nil, wantCode: 2, wantStderr: "--scenario is required"},
		{name: "unknown flag", args: []string{"--scenario", scenario, "--bogus"}, wantCode: 2, wantStderr: "flag provided but not defined: -bogus"},
		{name: "stray argument", args: []string{"--scenario", scenario, "extra"}, wantCode: 2, wantStderr: `unexpected arguments ["extra"]`},
		{name: "bad log format", args: []string{"--scenario", scenario, "--log-format", "xml"}, wantCode: 2, wantStderr: `--log-format "xml"`},
		{name: "bad log level", args: []string{"--scenario", scenario, "--log-level", "loud"}, wantCode: 2, wantStderr: `--log-level "loud"`},
		{name: "bad base port", args: []string{"--scenario", scenario, "--base-port", "70000"}, wantCode: 2, wantStderr: "--base-port 70000 out of range"},
		{name: "missing scenario file", args: []string{"--scenario", "nope.yaml", "--log-format", "json"}, wantCode: 1, wantStderr: `read scenario \"nope.yaml\"`},
		{name: "base port in cluster mode", args: []string{"--scenario", scenario, "--kubeconfig", "kubeconfig", "--base-port", "9000"}, wantCode: 2, wantStderr: "do not apply in cluster mode"},
		{name: "host in cluster mode", args: []string{"--scenario", scenario, "--context", "kind", "--host", "0.0.0.0"}, wantCode: 2, wantStderr: "do not apply in cluster mode"},
		{name: "missing kubeconfig", args: []string{"--scenario", scenario, "--kubeconfig", "nope.kubeconfig", "--log-format", "json"}, wantCode: 1, wantStderr: "kubeconfig: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(tt.args, &stderr); code != tt.wantCode {
				t.Errorf("run(%q) = %d, want %d; stderr:\n%s", tt.args, code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

// TestServe starts the simulator and the admin server, then cancels as a signal would.
func TestServe(t *testing.T) {
	targets := filepath.Join(t.TempDir(), "targets.json")
	cfg := config{
		scenario:    filepath.Join("..", "..", "testdata", "scenarios", "no-traffic.yaml"),
		targetsFile: targets,
		adminAddr:   "127.0.0.1:0",
		host:        "127.0.0.1",
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, nil, zerolog.Nop()) }()

	deadline := time.Now().Add(5 * time.Second)
	for {
		data, err := os.ReadFile(targets)
		if err == nil && strings.Count(string(data), `"targets"`) == 11 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("targets file never listed 11 pods: %s (%v)", data, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after cancellation")
	}
	if data, err := os.ReadFile(targets); err != nil || strings.TrimSpace(string(data)) != "[]" {
		t.Errorf("targets file after shutdown = %q (%v), want []", data, err)
	}
}

// TestServeCluster runs cluster mode against a fake API server: the Ready pod of the scenario's
// app listens on its pod IP and port, and the targets file, optional in this mode, lists it.
func TestServeCluster(t *testing.T) {
	ip := fmt.Sprintf("127.0.1.%d", 10+rand.IntN(240))
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	address := net.JoinHostPort(ip, fmt.Sprint(port))
	kube := fake.NewClientset(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "my-app-v1-7d9f8b6c5d-x2x4z",
			Namespace:   "default",
			Labels:      map[string]string{"app": "my-app", "version": "v1.0.0"},
			Annotations: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": fmt.Sprint(port)},
		},
		Status: corev1.PodStatus{
			PodIP:      ip,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	})
	targets := filepath.Join(t.TempDir(), "targets.json")
	cfg := config{
		scenario:    filepath.Join("..", "..", "testdata", "scenarios", "healthy.yaml"),
		targetsFile: targets,
		kubeconfig:  "fake",
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, kube, zerolog.Nop()) }()

	deadline := time.Now().Add(5 * time.Second)
	for {
		data, err := os.ReadFile(targets)
		if err == nil && strings.Contains(string(data), `"`+address+`"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("targets file never listed %s: %s (%v)", address, data, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Get("http://" + address + "/metrics")
	if err != nil {
		t.Fatalf("scrape the pod: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("scrape the pod: %s", resp.Status)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after cancellation")
	}
}
