package sandbox

import (
	"testing"
	"time"
)

func TestRenderConfig(t *testing.T) {
	tests := []struct {
		name string
		opts PrometheusOptions
		want string
	}{
		{
			name: "no targets",
			opts: PrometheusOptions{ScrapeInterval: time.Second},
			want: `global:
    scrape_interval: 1s
    scrape_timeout: 1s
    evaluation_interval: 1s
`,
		},
		{
			name: "file_sd targets",
			opts: PrometheusOptions{
				ScrapeInterval: 500 * time.Millisecond,
				FileSDFiles:    []string{"/tmp/a/targets.json", "/tmp/b/more.yaml"},
			},
			want: `global:
    scrape_interval: 500ms
    scrape_timeout: 500ms
    evaluation_interval: 500ms
scrape_configs:
    - job_name: pods
      honor_labels: false
      file_sd_configs:
        - files:
            - /tmp/a/targets.json
            - /tmp/b/more.yaml
          refresh_interval: 1s
`,
		},
		{
			name: "kubernetes pods",
			opts: PrometheusOptions{ScrapeInterval: time.Second, KubernetesSDKubeconfig: "/tmp/c/admin.kubeconfig"},
			want: `global:
    scrape_interval: 1s
    scrape_timeout: 1s
    evaluation_interval: 1s
scrape_configs:
    - job_name: kubernetes-pods
      honor_labels: false
      kubernetes_sd_configs:
        - role: pod
          kubeconfig_file: /tmp/c/admin.kubeconfig
      relabel_configs:
        - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
          regex: "true"
          action: keep
        - source_labels: [__meta_kubernetes_pod_phase]
          regex: Pending|Succeeded|Failed
          action: drop
        - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path]
          regex: (.+)
          target_label: __metrics_path__
        - source_labels: [__meta_kubernetes_pod_ip, __meta_kubernetes_pod_annotation_prometheus_io_port]
          regex: (.+);(\d+)
          target_label: __address__
          replacement: $1:$2
        - regex: __meta_kubernetes_pod_label_(.+)
          action: labelmap
        - source_labels: [__meta_kubernetes_namespace]
          target_label: namespace
        - source_labels: [__meta_kubernetes_pod_name]
          target_label: pod
`,
		},
		{
			name: "timeout capped at 10s",
			opts: PrometheusOptions{ScrapeInterval: time.Minute},
			want: `global:
    scrape_interval: 1m
    scrape_timeout: 10s
    evaluation_interval: 1m
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := renderConfig(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}
