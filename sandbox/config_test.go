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
