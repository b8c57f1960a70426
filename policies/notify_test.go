package policies

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestNotifications checks the notifications as loaded: defaults, the kinds each sends and
// the files each reads.
func TestNotifications(t *testing.T) {
	ps, err := LoadFile("testdata/notifications.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ns := ps[0].Spec.Notifications
	if len(ns) != 3 {
		t.Fatalf("got %d notifications, want 3", len(ns))
	}
	hook, slack, audit := ns[0], ns[1], ns[2]
	tests := []struct {
		name      string
		got, want any
	}{
		{"default timeout", time.Duration(hook.Timeout), DefaultNotificationTimeout},
		{"timeout from the file", time.Duration(audit.Timeout), 10 * time.Second},
		{"attempt timeout", audit.AttemptTimeout(), 10 * time.Second},
		{"attempt timeout of an unset timeout", Notification{}.AttemptTimeout(), DefaultNotificationTimeout},
		{"no events: every kind", hook.Wants("stopped"), true},
		{"an event named", slack.Wants("rolledBack"), true},
		{"an event not named", slack.Wants("step"), false},
		{"secret key ref", hook.Secret.SecretKeyRef.Key, "hmac-key"},
		{"slack URL from a Secret", slack.URLFrom.SecretKeyRef.Name, "coalmine-slack"},
		{"no files", len(hook.Files()), 0},
		{"files read", strings.Join(audit.Files(), ","), "/etc/coalmine/audit/url,/etc/coalmine/audit/key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

// TestNotificationExample uncomments the notifications of examples/my-app.yaml: the example a
// reader copies must load.
func TestNotificationExample(t *testing.T) {
	data, err := os.ReadFile("examples/my-app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in := false
	for _, l := range strings.Split(string(data), "\n") {
		if l == "  # notifications:" {
			in = true
		}
		if in && strings.HasPrefix(l, "  # ") {
			l = "  " + strings.TrimPrefix(l, "  # ")
		}
		out = append(out, l)
	}
	if !in {
		t.Fatal("examples/my-app.yaml has no commented notifications")
	}
	ps, err := Load("my-app.yaml", []byte(strings.Join(out, "\n")))
	if err != nil {
		t.Fatalf("the uncommented example: %v", err)
	}
	if n := len(ps[0].Spec.Notifications); n != 2 {
		t.Errorf("the uncommented example has %d notifications, want 2", n)
	}
}

// TestNotificationEventsInCRD checks the CustomResourceDefinition's enum of events is
// NotificationEvents: the marker on Notification.Events repeats the list.
func TestNotificationEventsInCRD(t *testing.T) {
	data, err := os.ReadFile("../deploy/crd/coalmine.dev_canarypolicies.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema struct {
						Properties struct {
							Spec struct {
								Properties struct {
									Notifications struct {
										Items struct {
											Properties struct {
												Events struct {
													Items struct {
														Enum []string `yaml:"enum"`
													} `yaml:"items"`
												} `yaml:"events"`
											} `yaml:"properties"`
										} `yaml:"items"`
									} `yaml:"notifications"`
								} `yaml:"properties"`
							} `yaml:"spec"`
						} `yaml:"properties"`
					} `yaml:"openAPIV3Schema"`
				} `yaml:"schema"`
			} `yaml:"versions"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	if len(crd.Spec.Versions) != 1 {
		t.Fatalf("got %d versions, want 1", len(crd.Spec.Versions))
	}
	got := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties.Spec.Properties.Notifications.Items.Properties.Events.Items.Enum
	if !slices.Equal(got, NotificationEvents()) {
		t.Errorf("the CRD's events are %v, NotificationEvents %v: change the marker on Notification.Events and run make generate", got, NotificationEvents())
	}
}
