package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/coalmine/coalmine/policies"
)

// Secrets reads a notification's secrets (a URL, a signing key) when a notice is sent, so a
// rotated secret is used from the next attempt on. namespace is the policy's: a Secret is read
// only there.
type Secrets interface {
	Read(ctx context.Context, namespace string, src policies.SecretSource) ([]byte, error)
}

// maxSecret bounds a secret: a URL or a key is far smaller, and a file could be anything.
const maxSecret = 64 << 10

// FileSecrets reads secrets from files (a mounted Secret, for instance). It reads no Secret
// through the API: a source naming one is an error.
type FileSecrets struct{}

// Read returns the content of src.File, at most 64 KiB, without a trailing newline.
func (FileSecrets) Read(_ context.Context, _ string, src policies.SecretSource) ([]byte, error) {
	if src.File == "" {
		return nil, errors.New("read secret: no file named (this process reads no Secret through the API)")
	}
	f, err := os.Open(src.File)
	if err != nil {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecret+1))
	if err != nil {
		return nil, fmt.Errorf("read secret %s: %w", src.File, err)
	}
	if len(b) > maxSecret {
		return nil, fmt.Errorf("read secret %s: larger than %d KiB", src.File, maxSecret>>10)
	}
	return trimNewline(b), nil
}

// KubeSecrets reads a key of a Secret through the API server, one GET of the named Secret in
// the policy's namespace per read (notices are few; a rotated Secret is seen at once). Files
// it reads as FileSecrets does. It needs only get on secrets.
type KubeSecrets struct {
	Client kubernetes.Interface
}

// Read returns the value of src's Secret key, or its file's content, at most 64 KiB, without a
// trailing newline (kubectl create secret --from-file keeps the file's).
func (k KubeSecrets) Read(ctx context.Context, namespace string, src policies.SecretSource) ([]byte, error) {
	ref := src.SecretKeyRef
	if ref == nil {
		return FileSecrets{}.Read(ctx, namespace, src)
	}
	if namespace == "" {
		return nil, fmt.Errorf("read secret %s: no namespace", ref.Name)
	}
	s, err := k.Client.CoreV1().Secrets(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read secret %s/%s: %w", namespace, ref.Name, err)
	}
	v, ok := s.Data[ref.Key]
	if !ok {
		return nil, fmt.Errorf("read secret %s/%s: no key %q", namespace, ref.Name, ref.Key)
	}
	if len(v) > maxSecret {
		return nil, fmt.Errorf("read secret %s/%s: key %q is larger than %d KiB", namespace, ref.Name, ref.Key, maxSecret>>10)
	}
	return trimNewline(bytes.Clone(v)), nil
}

// trimNewline drops one trailing "\n" or "\r\n": editors and echo add one that is no part of
// a key or a URL.
func trimNewline(b []byte) []byte {
	if bytes.HasSuffix(b, []byte("\r\n")) {
		return b[:len(b)-2]
	}
	return bytes.TrimSuffix(b, []byte("\n"))
}
