package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/proto/agentpb/agentpbconnect"
)

// selfSigned writes a certificate for 127.0.0.1 and its key as PEM files
// and returns a pool that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "nestbox agent test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestServeTLS checks that an agent given a certificate serves its API
// over HTTPS only (HTTP/1.1), with the token still required.
func TestServeTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	a := &Agent{cfg: Config{Token: testToken, TLSCertFile: certFile, TLSKeyFile: keyFile}, log: testLogger(), sandboxes: map[string]*sandbox{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	base := "https://" + ln.Addr().String()
	resp, err := (&http.Client{Transport: tr}).Get(base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 1 {
		t.Errorf("GET /health over TLS: %s %s", resp.Proto, resp.Status)
	}
	authed := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+testToken)
		return tr.RoundTrip(r)
	})}
	c := agentpbconnect.NewAgentClient(authed, base)
	if _, err := c.ListSandboxes(ctx, connect.NewRequest(&agentpb.ListSandboxesRequest{})); err != nil {
		t.Errorf("ListSandboxes over TLS with the token: %v", err)
	}
	anon := agentpbconnect.NewAgentClient(&http.Client{Transport: tr}, base)
	if _, err := anon.ListSandboxes(ctx, connect.NewRequest(&agentpb.ListSandboxesRequest{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("ListSandboxes over TLS without the token: %v, want unauthenticated", err)
	}
	// Plain HTTP is not served.
	if resp, err := http.Get("http://" + ln.Addr().String() + "/health"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP served by a TLS agent")
		}
	}
	// A client that does not trust the certificate gets nowhere.
	if resp, err := http.Get(base + "/health"); err == nil {
		resp.Body.Close()
		t.Error("a client without the CA reached the agent")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
