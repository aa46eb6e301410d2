package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elevid/elevid/internal/testenv"
)

// TestACMEWithPebble obtains a certificate for real from Pebble, Let's
// Encrypt's test CA (Debian package pebble), with real validation
// (PEBBLE_VA_ALWAYS_VALID is not set): Pebble resolves the host name with
// pebble-challtestsrv's mock DNS (every name is 127.0.0.1) and connects to
// ElevID's listeners. Then a TLS client sees ElevID serve a certificate
// issued by Pebble's intermediate for the host.
//
// tls-alpn-01: Pebble's TLS-ALPN-01 port is ElevID's https listener.
// http-01: Pebble's TLS-ALPN-01 port has no listener, so that challenge
// fails and autocert falls back to HTTP-01 on the redirect listener.
//
// Pebble validates on the ports of its configuration, so the ports are
// chosen free before anything starts (freePorts).
func TestACMEWithPebble(t *testing.T) {
	pebble := testenv.Binary(t, "pebble", "pebble")
	dns := testenv.Binary(t, "pebble", "pebble-challtestsrv")
	for _, tc := range []struct{ challenge string }{{"tls-alpn-01"}, {"http-01"}} {
		t.Run(tc.challenge, func(t *testing.T) {
			ports := freePorts(t, 10)
			p := func(i int) int { return ports[i] }
			dir := t.TempDir()

			// Pebble serves its API over https with a certificate of ours.
			api := newTestCert(t, 1, "127.0.0.1", "localhost")
			apiCert, apiKey, apiCA := filepath.Join(dir, "pebble-cert.pem"), filepath.Join(dir, "pebble-key.pem"), filepath.Join(dir, "pebble-ca.pem")
			api.install(t, apiCert, apiKey, time.Now())
			if err := os.WriteFile(apiCA, api.certPEM, 0o600); err != nil {
				t.Fatal(err)
			}
			elevidHTTPS, elevidHTTP := p(3), p(2)
			pebbleTLSPort := elevidHTTPS
			if tc.challenge == "http-01" {
				pebbleTLSPort = p(9) // nothing listens there
			}
			pcfg, _ := json.Marshal(map[string]any{"pebble": map[string]any{
				"listenAddress": fmt.Sprintf("127.0.0.1:%d", p(0)), "managementListenAddress": fmt.Sprintf("127.0.0.1:%d", p(1)),
				"certificate": apiCert, "privateKey": apiKey, "httpPort": elevidHTTP, "tlsPort": pebbleTLSPort,
				"ocspResponderURL": "", "externalAccountBindingRequired": false,
			}})
			pcfgFile := filepath.Join(dir, "pebble.json")
			if err := os.WriteFile(pcfgFile, pcfg, 0o600); err != nil {
				t.Fatal(err)
			}
			var pebbleLog syncBuffer
			startProcess(t, &pebbleLog, nil, dns, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
				"-dns01", fmt.Sprintf("127.0.0.1:%d", p(4)), "-management", fmt.Sprintf("127.0.0.1:%d", p(5)),
				"-http01", "", "-https01", "", "-tlsalpn01", "")
			startProcess(t, &pebbleLog, []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"},
				pebble, "-config", pcfgFile, "-dnsserver", fmt.Sprintf("127.0.0.1:%d", p(4)))

			apiRoots := x509.NewCertPool()
			apiRoots.AddCert(api.cert)
			apiClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: apiRoots}}, Timeout: 10 * time.Second}
			directory := fmt.Sprintf("https://127.0.0.1:%d/dir", p(0))
			waitFor(t, 10*time.Second, func() error {
				resp, err := apiClient.Get(directory)
				if err == nil {
					resp.Body.Close()
				}
				return err
			}, &pebbleLog)

			const host = "elevid.test"
			issuer := fmt.Sprintf("https://%s:%d", host, elevidHTTPS)
			start := time.Now()
			serveLog, _ := startServe(t, fmt.Sprintf(`listen: 127.0.0.1:%d
issuer: %s
database: %s
log: {level: info}
secrets: {session_keys: [%s], encryption_keys: [%s], pairwise_secret: %s}
server:
  metrics_listen: ''
  http_redirect_listen: 127.0.0.1:%d
  tls: {acme: {email: it@example.dk, directory_url: %q, cache_dir: %s, hosts: [%s], ca_file: %s}}
`, elevidHTTPS, issuer, filepath.Join(dir, "elevid.db"), key32, key32, key32, elevidHTTP, directory, filepath.Join(dir, "acme"), host, apiCA),
				func() error { return dialOK(fmt.Sprintf("127.0.0.1:%d", elevidHTTP)) })

			// Pebble's root and intermediate (regenerated at every start).
			fetchPEM := func(path string) *x509.Certificate {
				resp, err := apiClient.Get(fmt.Sprintf("https://127.0.0.1:%d%s", p(1), path))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				blk, _ := pem.Decode(b)
				if blk == nil {
					t.Fatalf("%s: no PEM: %q", path, b)
				}
				c, err := x509.ParseCertificate(blk.Bytes)
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			root, intermediate := fetchPEM("/roots/0"), fetchPEM("/intermediates/0")
			roots := x509.NewCertPool()
			roots.AddCert(root)

			// serve obtains the certificate at start, before any client asks.
			waitFor(t, 60*time.Second, func() error {
				if _, err := os.Stat(filepath.Join(dir, "acme", host)); err != nil {
					return fmt.Errorf("%w\nElevID:\n%s", err, serveLog.String())
				}
				return nil
			}, &pebbleLog)
			if n := strings.Count(pebbleLog.String(), "POST /finalize-order/"); n != 1 {
				t.Errorf("%d orders finalized, want 1", n)
			}

			client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: host}, ForceAttemptHTTP2: true}}
			resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/healthz", elevidHTTPS))
			if err != nil {
				t.Fatalf("https with Pebble's root: %v\nElevID:\n%s\nPebble:\n%s", err, serveLog.String(), pebbleLog.String())
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			leaf := resp.TLS.PeerCertificates[0]
			if resp.StatusCode != 200 || string(body) != "ok\n" {
				t.Fatalf("healthz = %d %q", resp.StatusCode, body)
			}
			if leaf.VerifyHostname(host) != nil || leaf.Issuer.String() != intermediate.Subject.String() ||
				leaf.CheckSignatureFrom(intermediate) != nil {
				t.Fatalf("served certificate for %v issued by %q; want %s by %q", leaf.DNSNames, leaf.Issuer, host, intermediate.Subject)
			}
			t.Logf("certificate for %s from Pebble (%s) obtained and served in %s", host, leaf.Issuer.CommonName, time.Since(start).Round(time.Millisecond))

			// A client without a server name (a health check by address)
			// gets the issuer's certificate.
			conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", elevidHTTPS), &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatalf("TLS without a server name: %v", err)
			}
			if got := conn.ConnectionState().PeerCertificates[0]; !got.Equal(leaf) {
				t.Errorf("without a server name: certificate for %v", got.DNSNames)
			}
			conn.Close()

			// Which challenge Pebble validated.
			if httpTried := strings.Contains(pebbleLog.String(), "Attempting to validate w/ HTTP"); httpTried != (tc.challenge == "http-01") {
				t.Errorf("Pebble validated over HTTP: %v, want %v (challenge %s)", httpTried, !httpTried, tc.challenge)
			}
			// The account key and certificate are cached for the next start.
			entries, _ := os.ReadDir(filepath.Join(dir, "acme"))
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if !strings.Contains(strings.Join(names, " "), host) {
				t.Errorf("cache_dir holds %v, want the certificate of %s", names, host)
			}
		})
	}
}

// startProcess runs name with args and env (added to the test's) until the
// test ends, its output going to out.
func startProcess(t *testing.T, out io.Writer, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}

// freePorts returns n distinct loopback ports that were free a moment
// ago (the kernel's choice for port 0): unlike fixed ports, they do not
// collide with the same test running in another checkout on this machine.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

func waitFor(t *testing.T, d time.Duration, ok func() error, log *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := ok()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after %s: %v\n%s", d, err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func dialOK(addr string) error {
	resp, err := (&http.Client{Timeout: time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get("http://" + addr + "/")
	if err == nil {
		resp.Body.Close()
	}
	return err
}
