package notify

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/coalmine/coalmine/policies"
)

// TestFileSecretRotation checks that a rotated signing key file (a mounted Secret the kubelet
// updates) is used from the next notice on.
func TestFileSecretRotation(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	rc := newReceiver(t, nil)
	target := webhookTarget("hook", rc.URL)
	target.Notification.Secret = &policies.SecretSource{File: keyFile}
	s := NewSender(FileSecrets{}, "test")
	for i, key := range []string{"first-key", "second-key"} {
		if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := s.Send(context.Background(), target, notice("n-1")); err != nil {
			t.Fatal(err)
		}
		got := rc.requests()[i]
		if err := Verify([]byte(key), got.header, got.body, time.Now(), 0); err != nil {
			t.Errorf("notice %d does not verify with %s: %v", i+1, key, err)
		}
	}
}

// TestKubeSecrets reads Secrets through a fake clientset, as the daemon reads them through the
// API server: only in the policy's namespace, the rotated value at once.
func TestKubeSecrets(t *testing.T) {
	secret := func(ns, name string, data map[string]string) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{}}
		for k, v := range data {
			s.Data[k] = []byte(v)
		}
		return s
	}
	client := fake.NewClientset(
		secret("shop", "notify", map[string]string{"hmac": "k1\n", "crlf": "k2\r\n", "url": "https://hooks.example.com/x"}),
		secret("other", "theirs", map[string]string{"hmac": "not yours"}),
		secret("shop", "huge", map[string]string{"hmac": strings.Repeat("x", maxSecret+1)}),
	)
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ref := func(name, key string) policies.SecretSource {
		return policies.SecretSource{SecretKeyRef: &policies.SecretKeyRef{Name: name, Key: key}}
	}
	tests := []struct {
		name, namespace string
		src             policies.SecretSource
		want, wantErr   string
	}{
		{name: "a key, its newline dropped", namespace: "shop", src: ref("notify", "hmac"), want: "k1"},
		{name: "a CRLF dropped", namespace: "shop", src: ref("notify", "crlf"), want: "k2"},
		{name: "a URL", namespace: "shop", src: ref("notify", "url"), want: "https://hooks.example.com/x"},
		{name: "a file", namespace: "shop", src: policies.SecretSource{File: keyFile}, want: "from-a-file"},
		{name: "no such key", namespace: "shop", src: ref("notify", "nope"), wantErr: `read secret shop/notify: no key "nope"`},
		{name: "no such Secret", namespace: "shop", src: ref("missing", "hmac"), wantErr: "read secret shop/missing:"},
		{name: "another namespace's Secret", namespace: "shop", src: ref("theirs", "hmac"), wantErr: "read secret shop/theirs:"},
		{name: "too large", namespace: "shop", src: ref("huge", "hmac"), wantErr: "larger than 64 KiB"},
		{name: "no namespace", src: ref("notify", "hmac"), wantErr: "no namespace"},
	}
	k := KubeSecrets{Client: client}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := k.Read(context.Background(), tt.namespace, tt.src)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Read = %q, %v; want an error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("Read = %q, %v; want %q", got, err, tt.want)
			}
		})
	}

	t.Run("rotated", func(t *testing.T) {
		s := secret("shop", "notify", map[string]string{"hmac": "k9"})
		if _, err := client.CoreV1().Secrets("shop").Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		got, err := k.Read(context.Background(), "shop", ref("notify", "hmac"))
		if err != nil || string(got) != "k9" {
			t.Fatalf("Read = %q, %v; want the rotated k9", got, err)
		}
	})

	t.Run("a Slack URL from a Secret, sent to", func(t *testing.T) {
		rc := newReceiver(t, nil)
		s := secret("shop", "slack", map[string]string{"url": rc.URL + "/services/T0/B0/x\n"})
		if _, err := client.CoreV1().Secrets("shop").Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		target := webhookTarget("team", "")
		target.Notification.Type = policies.NotificationSlack
		target.Notification.URLFrom = &policies.SecretSource{SecretKeyRef: &policies.SecretKeyRef{Name: "slack", Key: "url"}}
		if err := NewSender(k, "test").Send(context.Background(), target, notice("n-1")); err != nil {
			t.Fatal(err)
		}
		if n := len(rc.requests()); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})
}

func TestFileSecrets(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content string
		want          string
		wantErr       string
	}{
		{name: "a newline dropped", content: "key\n", want: "key"},
		{name: "a CRLF dropped", content: "key\r\n", want: "key"},
		{name: "one newline only", content: "key\n\n", want: "key\n"},
		{name: "no newline", content: "key", want: "key"},
		{name: "64 KiB", content: strings.Repeat("k", maxSecret), want: strings.Repeat("k", maxSecret)},
		{name: "larger than 64 KiB", content: strings.Repeat("k", maxSecret+1), wantErr: "larger than 64 KiB"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, string(rune('a'+i)))
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := FileSecrets{}.Read(context.Background(), "shop", policies.SecretSource{File: p})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Read: %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(got, []byte(tt.want)) {
				t.Fatalf("Read = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	_, err := FileSecrets{}.Read(context.Background(), "shop", policies.SecretSource{SecretKeyRef: &policies.SecretKeyRef{Name: "a", Key: "b"}})
	if err == nil {
		t.Error("FileSecrets read a Secret it cannot reach")
	}
}
