package notify

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/coalmine/coalmine/policies"
)

var update = flag.Bool("update", false, "rewrite the golden bodies in testdata/")

// TestBodiesGolden pins the bodies of each type of notification: the webhook's is a documented
// schema (doc.go shows testdata/webhook.json), and receivers parse it.
func TestBodiesGolden(t *testing.T) {
	n := notice("5f0c2a7e-shop-cart-1.5.0-rolledBack")
	tests := []struct {
		name, file string
		typ        policies.NotificationType
	}{
		{"webhook", "testdata/webhook.json", policies.NotificationWebhook},
		{"slack", "testdata/slack.json", policies.NotificationSlack},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := body(tt.typ, n)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := json.Indent(&got, b, "", "  "); err != nil {
				t.Fatal(err)
			}
			got.WriteByte('\n')
			if *update {
				if err := os.WriteFile(tt.file, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatalf("read golden (go test ./notify -update): %v", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("%s body differs from %s:\n%s", tt.name, tt.file, got.Bytes())
			}
		})
	}
	t.Run("doc.go shows the webhook body", func(t *testing.T) {
		doc, err := os.ReadFile("doc.go")
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile("testdata/webhook.json")
		if err != nil {
			t.Fatal(err)
		}
		var shown []string
		for _, l := range strings.Split(strings.TrimSpace(string(want)), "\n") {
			shown = append(shown, "//\t"+l)
		}
		if !strings.Contains(string(doc), strings.Join(shown, "\n")) {
			t.Error("doc.go does not show testdata/webhook.json as it is: copy it in")
		}
	})
}

// TestSlackEscapes sends hostile strings from the cluster through a Slack body: none may
// mention a channel or a user, or make a link, and each is bounded.
func TestSlackEscapes(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Notice)
		want string // in the decoded text, escaped
	}{
		{name: "channel mention in a reason",
			edit: func(n *Notice) { n.Reason = "<!channel> roll back now" },
			want: "&lt;!channel&gt; roll back now"},
		{name: "a disguised link in a reason",
			edit: func(n *Notice) { n.Reason = "see <https://evil.example|the runbook>" },
			want: "see &lt;https://evil.example|the runbook&gt;"},
		{name: "user mention in a version",
			edit: func(n *Notice) { n.Canary = "1.5.0<@U0123>" },
			want: "1.5.0&lt;@U0123&gt;"},
		{name: "here mention in who asked",
			edit: func(n *Notice) { n.Kind, n.By, n.Reason = KindCommand, "<!here>", "promote" },
			want: "by &lt;!here&gt;"},
		{name: "ampersands",
			edit: func(n *Notice) { n.Reason = "a & b &lt; c" },
			want: "a &amp; b &amp;lt; c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := notice("n-1")
			tt.edit(&n)
			b, err := body(policies.NotificationSlack, n)
			if err != nil {
				t.Fatal(err)
			}
			var m slackMessage
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			texts := []string{m.Text}
			for _, bl := range m.Blocks {
				if bl.Text != nil {
					texts = append(texts, bl.Text.Text)
				}
				for _, f := range bl.Fields {
					texts = append(texts, f.Text)
				}
			}
			all := strings.Join(texts, "\n")
			if strings.ContainsAny(all, "<>") {
				t.Errorf("a text holds < or >:\n%s", all)
			}
			if !strings.Contains(all, tt.want) {
				t.Errorf("texts do not hold %q:\n%s", tt.want, all)
			}
		})
	}
}

// TestBounds checks that whatever the cluster holds, a body stays small and valid UTF-8.
func TestBounds(t *testing.T) {
	n := notice("n-1")
	n.Reason = strings.Repeat("é", 5000) // 10,000 bytes
	n.Canary = strings.Repeat("v", 1000)
	n.By = "bad \xff\xfe utf-8"
	p := NewPayload(n)
	tests := []struct {
		name string
		s    string
		max  int
	}{
		{"reason", p.Reason, maxReason},
		{"canary version", p.CanaryVersion, maxField},
		{"by", p.By, maxField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.s) > tt.max || !utf8.ValidString(tt.s) {
				t.Errorf("%d bytes (at most %d), valid UTF-8 %v", len(tt.s), tt.max, utf8.ValidString(tt.s))
			}
		})
	}
	if !strings.HasSuffix(p.Reason, "…") {
		t.Error("a cut reason does not end with …")
	}
	b, err := body(policies.NotificationSlack, n)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 8000 {
		t.Errorf("slack body is %d bytes", len(b))
	}
}

// TestKinds checks the notice kinds are the events a policy may filter on, and each has its
// own headline.
func TestKinds(t *testing.T) {
	var kinds []string
	for _, k := range Kinds() {
		kinds = append(kinds, string(k))
		if emoji, _ := headline(Notice{Kind: k}); emoji == ":bell:" {
			t.Errorf("kind %s has no headline of its own", k)
		}
	}
	if !slices.Equal(kinds, policies.NotificationEvents()) {
		t.Errorf("Kinds %v, policies.NotificationEvents %v", kinds, policies.NotificationEvents())
	}
}
