package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/stoker-data/stoker/clients/stoker"
)

// Both binaries print the version the build linked in (the Makefile links
// `git describe`), with the toolchain and platform.
func TestVersionOfTheBinaries(t *testing.T) {
	for _, cmd := range []string{"stokerd", "stoker"} {
		out, err := exec.Command(filepath.Join(binDir, cmd), "--version").CombinedOutput()
		want := fmt.Sprintf("%s %s %s %s/%s\n", cmd, e2eVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		if err != nil || string(out) != want {
			t.Errorf("%s --version: %v %q, want %q", cmd, err, out, want)
		}
	}
}

// A stokerd started with a configuration file alone serves where the file
// says, with the cache it says; `stoker stats` finds it by $STOKER_SERVER
// and shows each tier and the distinct data, each shard once.
func TestServerFromConfigFile(t *testing.T) {
	s3, _, want := startS3Dataset(t)
	p := &stokerd{t: t, grpc: freeAddr(t), web: freeAddr(t), cacheDir: t.TempDir(), env: s3.Env(), bare: true}
	config := filepath.Join(t.TempDir(), "stokerd.toml")
	if err := os.WriteFile(config, fmt.Appendf(nil, `# stokerd settings
listen = %q
http = %q
cache-dir = %q
memory-cache = "64MiB"
disk-cache = "256MiB"
allow-s3 = ["s3://%s/train/"]
`, p.grpc, p.web, p.cacheDir, bucket), 0o600); err != nil {
		t.Fatal(err)
	}
	p.start("--config", config)
	t.Cleanup(p.kill)
	if !strings.Contains(p.logs(), `s3_prefixes=s3://`+bucket+`/train/`) {
		t.Errorf("the allow-list of the file is not in force:\n%s", p.logs())
	}
	e := &env{s3: s3, srv: p, want: want, url: "s3://" + bucket + "/train/"}
	e.checkEpoch(t, readAll(t, dialRetrying(t, p.grpc), stoker.Epoch{URL: e.url, Seed: 1, BatchSize: 8}))

	cmd := exec.Command(filepath.Join(binDir, "stoker"), "stats")
	cmd.Env = append(os.Environ(), "STOKER_SERVER="+p.grpc)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("stoker stats with $STOKER_SERVER: %v\n%s", err, out)
	}
	t.Logf("stoker stats:\n%s", out)
	m := regexp.MustCompile(`(?m)^memory tier +(.+) / 64 MiB\ndisk tier +(.+) / 256 MiB\ncached data +(.+) \(a shard in both tiers counts once\)$`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("stoker stats lacks the tiers and the distinct data:\n%s", out)
	}
	// Every shard was written through to both tiers: each tier holds the
	// dataset, and the distinct data is the dataset once, not twice.
	if m[1] != m[3] || m[2] != m[3] || m[3] == "0 B" {
		t.Errorf("memory %s, disk %s, distinct %s: want the same, non-zero", m[1], m[2], m[3])
	}
}

// A missing bucket says which URL and which bucket, in the words of the
// storage layer, without the S3 SDK's request and host IDs or gRPC's
// wrapping, whether the URL is a folder or a brace list.
func TestMissingBucketMessage(t *testing.T) {
	e := newEnv(t)
	for url, want := range map[string]string{
		"s3://no-such-bucket/train/":           `^stoker: list s3://no-such-bucket/train/: not found: bucket "no-such-bucket" does not exist \(NotFound\)\n$`,
		"s3://no-such-bucket/train-{0..3}.tar": `^stoker: stat s3://no-such-bucket/train-0.tar: not found: bucket "no-such-bucket" does not exist \(and 3 more of the 4 objects are missing\) \(NotFound\)\n$`,
	} {
		out, err := exec.Command(filepath.Join(binDir, "stoker"), "read", "--server", e.srv.grpc, url).CombinedOutput()
		if code := exitCode(err); code != 1 || !regexp.MustCompile(want).Match(out) {
			t.Errorf("stoker read %s: exit %d\n%s\nwant exit 1 and %s", url, code, out, want)
		}
		for _, noise := range []string{"RequestID", "HostID", "rpc error", "operation error"} {
			if strings.Contains(string(out), noise) {
				t.Errorf("stoker read %s says %q:\n%s", url, noise, out)
			}
		}
		t.Logf("stoker read %s:\n%s", url, out)
	}
}

func exitCode(err error) int {
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
