// Command stub stands in for coalmine in coalmine-image's tests: a small static binary that
// builds in seconds. Like coalmine it answers `version` with the version stamped at link
// time; `verify` reads a PEM certificate on stdin and checks it against the system roots, as a
// TLS client in the image would.
package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
)

// version is stamped at link time: -ldflags "-X main.version=v1.2.3".
var version = "unknown"

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: stub version|verify")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "version":
		fmt.Printf("coalmine %s (stub, uid %d, gid %d)\n", version, os.Getuid(), os.Getgid())
	case "verify":
		if err := verify(os.Stdin); err != nil {
			fmt.Fprintf(os.Stderr, "verify: %v\n", err)
			os.Exit(1)
		}
		fmt.Println("verified")
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

func verify(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return fmt.Errorf("no PEM block on stdin")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return err
	}
	// No Roots: the system's, which Go reads from /etc/ssl/certs/ca-certificates.crt.
	_, err = cert.Verify(x509.VerifyOptions{})
	return err
}
