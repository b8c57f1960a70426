package sandbox

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ContextName is the context (and cluster) name in the kubeconfig files the
// sandbox writes.
const ContextName = "coalmine-sandbox"

// tokenTTL is how long TokenFor's tokens are valid; a test is shorter.
const tokenTTL = int64(3600)

// Files StartCluster creates in ClusterOptions.Dir.
const (
	adminKubeconfigFile = "admin.kubeconfig"
	tokenAuthFile       = "tokens.csv"
	saKeyFile           = "service-account.key"
	saPubFile           = "service-account.pub"
)

// randomToken returns 32 random bytes in hex.
func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// writeAuthFiles writes the token file with an admin in system:masters and
// a fresh RSA key pair for service-account tokens.
func writeAuthFiles(dir, adminToken string) error {
	line := fmt.Sprintf("%s,admin,admin,\"system:masters\"\n", adminToken)
	if err := os.WriteFile(filepath.Join(dir, tokenAuthFile), []byte(line), 0o600); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("service-account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("service-account key: %w", err)
	}
	priv := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(filepath.Join(dir, saKeyFile), priv, 0o600); err != nil {
		return fmt.Errorf("write service-account key: %w", err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	if err := os.WriteFile(filepath.Join(dir, saPubFile), pubPEM, 0o644); err != nil {
		return fmt.Errorf("write service-account key: %w", err)
	}
	return nil
}

// writeKubeconfig writes a kubeconfig for server, trusting caPEM, that
// authenticates with token, as context ContextName.
func writeKubeconfig(path, server string, caPEM []byte, user, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[ContextName] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[ContextName] = &clientcmdapi.Context{Cluster: ContextName, AuthInfo: user, Namespace: metav1.NamespaceDefault}
	cfg.CurrentContext = ContextName
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

// TokenFor returns a token of the ServiceAccount namespace/serviceAccount,
// valid for an hour, from the TokenRequest API. It creates the
// ServiceAccount if it does not exist (the namespace must). The token has
// exactly the RBAC permissions bound to the ServiceAccount, so a test can
// run coalmine with the Role and RoleBinding it ships.
func (c *Cluster) TokenFor(ctx context.Context, namespace, serviceAccount string) (string, error) {
	sas := c.client.CoreV1().ServiceAccounts(namespace)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: serviceAccount}}
	if _, err := sas.Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("token for %s/%s: %w", namespace, serviceAccount, err)
	}
	ttl := tokenTTL
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &ttl}}
	tr, err := sas.CreateToken(ctx, serviceAccount, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for %s/%s: %w", namespace, serviceAccount, err)
	}
	return tr.Status.Token, nil
}

// KubeconfigFor writes a kubeconfig for the cluster that authenticates with
// token (e.g. from TokenFor) and returns its path, in the cluster's
// directory. Its context is ContextName, its namespace "default".
func (c *Cluster) KubeconfigFor(token string) (string, error) {
	sum := sha256.Sum256([]byte(token))
	path := filepath.Join(c.dir, "token-"+hex.EncodeToString(sum[:6])+".kubeconfig")
	if err := writeKubeconfig(path, c.rest.Host, c.rest.CAData, "token", token); err != nil {
		return "", fmt.Errorf("kubeconfig for token: %w", err)
	}
	return path, nil
}
