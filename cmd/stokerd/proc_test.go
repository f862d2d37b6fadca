package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// binDir holds the stokerd and stoker binaries built once by TestMain,
// with e2eVersion linked in as the Makefile links its version.
var binDir string

const (
	versionVar = "github.com/stoker-data/stoker/cmd/internal/cli.version"
	e2eVersion = "v0.0.0-e2e"
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stoker-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, cmd := range []string{"stokerd", "stoker"} {
		out, err := exec.Command("go", "build", "-race", "-ldflags", "-X "+versionVar+"="+e2eVersion,
			"-o", filepath.Join(dir, cmd), "github.com/stoker-data/stoker/cmd/"+cmd).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", cmd, err, out)
			os.Exit(1)
		}
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// stokerd is a running server process.
type stokerd struct {
	t         testing.TB
	grpc, web string
	cacheDir  string
	env       []string
	cmd       *exec.Cmd
	exited    chan struct{}
	log       *os.File
	bare      bool // start with the extra arguments alone (a --config file names the addresses)
}

// startStokerd starts a server with the given environment (S3 settings)
// and cache folder, and waits until /healthz answers.
func startStokerd(t testing.TB, env []string, cacheDir string, extra ...string) *stokerd {
	t.Helper()
	p := &stokerd{t: t, grpc: freeAddr(t), web: freeAddr(t), cacheDir: cacheDir, env: env}
	p.start(extra...)
	t.Cleanup(p.kill)
	return p
}

// start starts the process and waits until it is healthy. freeAddr's
// ports were free a moment ago, not reserved: when another process took
// one first (stokerd exits with "address already in use"), start picks
// new gRPC and HTTP ports and tries again, a few times.
func (p *stokerd) start(extra ...string) {
	p.t.Helper()
	for attempt := 1; ; attempt++ {
		if p.startOnce(extra...) {
			return
		}
		if p.bare || attempt == 3 || !strings.Contains(p.logs(), "address already in use") {
			p.t.Fatalf("stokerd exited at start:\n%s", p.logs())
		}
		p.t.Logf("stokerd found a port taken (attempt %d): trying new ports", attempt)
		p.grpc, p.web = freeAddr(p.t), freeAddr(p.t)
	}
}

// startOnce starts the process and waits until it is healthy; false when
// it exited first.
func (p *stokerd) startOnce(extra ...string) bool {
	t := p.t
	t.Helper()
	args := append([]string{"--listen", p.grpc, "--http", p.web, "--cache-dir", p.cacheDir,
		"--memory-cache", "64MiB", "--disk-cache", "256MiB", "--log-level", "debug"}, extra...)
	if p.bare {
		args = extra
	}
	log, err := os.CreateTemp(t.TempDir(), "stokerd-*.log")
	if err != nil {
		t.Fatal(err)
	}
	p.log = log
	p.cmd = exec.Command(filepath.Join(binDir, "stokerd"), args...)
	p.cmd.Env = append(os.Environ(), p.env...)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	health, client := "http://"+p.web+"/healthz", http.DefaultClient
	if slices.Contains(extra, "--http-tls") { // the test checks the certificate itself; this only waits
		health = "https://" + p.web + "/healthz"
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a readiness poll
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-p.exited:
			return false
		default:
		}
		if r, err := client.Get(health); err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return true
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("stokerd not healthy after 60s:\n%s", p.logs())
		}
		select {
		case <-p.exited:
		case <-time.After(20 * time.Millisecond): // poll interval, not a wait for an outcome
		}
	}
}

func (p *stokerd) logs() string {
	b, _ := os.ReadFile(p.log.Name())
	return string(b)
}

// kill stops the process with SIGKILL and waits for it.
func (p *stokerd) kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// restart kills the server and starts it again on the same addresses.
func (p *stokerd) restart(extra ...string) {
	p.kill()
	p.start(extra...)
}

// A port taken between freeAddr and stokerd's listen makes start try new
// ports instead of failing the test.
func TestStartRetriesATakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	p := &stokerd{t: t, grpc: taken.Addr().String(), web: freeAddr(t), cacheDir: t.TempDir()}
	p.start("--disk-cache", "0")
	t.Cleanup(p.kill)
	if p.grpc == taken.Addr().String() {
		t.Fatalf("stokerd serves on %s, the port another process holds", p.grpc)
	}
}
