package main

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stoker-data/stoker/cmd/internal/clitest"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// Every command's help: what it does, its URL argument, its double-dash
// flags with their defaults, and the environment; exit 0 on stdout.
func TestHelpGolden(t *testing.T) {
	for _, cmd := range []string{"", "demo", "read", "stats", "prefetch", "cluster", "doctor", "plan", "index", "completion"} {
		args := append(strings.Fields(cmd), "--help")
		r := runStoker(t, nil, args...)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("stoker %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
		}
		name := "help-" + cmd
		if cmd == "" {
			name = "help"
		}
		clitest.Golden(t, name, r.stdout)
	}
	if r := runStoker(t, nil, "help", "read"); r.stdout != runStoker(t, nil, "read", "-h").stdout {
		t.Error("stoker help read and stoker read -h differ")
	}
}

func TestVersionGolden(t *testing.T) {
	r := runStoker(t, nil, "--version")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	clitest.Golden(t, "version", clitest.Toolchain(r.stdout))
}

// A completion script comes for each shell, and the shell's completion
// request lists the commands and a flag's values.
func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		if r := runStoker(t, nil, "completion", sh); r.code != 0 || !strings.Contains(r.stdout, "stoker") {
			t.Errorf("completion %s: exit %d: %s", sh, r.code, r.stderr)
		}
	}
	if r := runStoker(t, nil, "__complete", "re"); !strings.Contains(r.stdout, "read") {
		t.Errorf("completing 're':\n%s", r.stdout)
	}
	if r := runStoker(t, nil, "__complete", "read", "--format", ""); !strings.Contains(r.stdout, "parquet\n") {
		t.Errorf("completing --format:\n%s", r.stdout)
	}
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Every command that dials says there is no stokerd and how to start one,
// for the address from --server, from $STOKER_SERVER, or a unix socket
// that is not there.
func TestNoServerHint(t *testing.T) {
	addr := closedAddr(t)
	sock := filepath.Join(t.TempDir(), "stoker.sock")
	want := "stoker: no stokerd at " + addr + ": start one (stokerd --listen " + addr + ") or pass --server\n"
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"stats", "--server", addr}, want},
		{map[string]string{"STOKER_SERVER": addr}, []string{"stats"}, want},
		{map[string]string{"STOKER_SERVER": addr}, []string{"read", "s3://b/train/"}, want},
		{nil, []string{"prefetch", "--server", addr, "s3://b/train/", "--wait"}, want},
		{nil, []string{"cluster", "--server", addr}, want},
		{nil, []string{"doctor", "--server", addr}, want},
		{map[string]string{"STOKER_SERVER": "1.2.3.4:5"}, []string{"stats", "--server", addr}, want}, // the flag wins
		{nil, []string{"stats", "--server", "unix://" + sock}, "stoker: no stokerd at unix://" + sock + ": start one (stokerd --unix " + sock + ") or pass --server\n"},
	} {
		r := runStoker(t, tc.env, tc.args...)
		if r.code != 1 || !strings.HasSuffix(r.stderr, tc.want) {
			t.Errorf("%v %v: exit %d\n%s\nwant exit 1 and\n%s", tc.env, tc.args, r.code, r.stderr, tc.want)
		}
	}
}

// Several URLs that a shell made of one brace list get the quoted URL to
// type; other wrong arguments say what is wanted. All exit 2.
func TestArgumentHints(t *testing.T) {
	urls := func(format string, n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf(format, i))
		}
		return out
	}
	var got strings.Builder
	for _, args := range [][]string{
		append([]string{"read"}, urls("s3://bucket/train-%06d.tar", 100)...),
		append([]string{"prefetch", "--wait"}, urls("s3://bucket/train-%06d.tar", 3)...),
		{"index", "s3://bucket/train/", "s3://bucket/val/"},
		{"read", "s3://a/x.tar", "s3://b/y.tar"},
		{"read"},
		{"stats", "extra"},
		{"raed", "s3://bucket/train/"},
		{"read", "--epoch", "one", "s3://bucket/train/"},
		{"read", "--shuffle-window", "some", "s3://bucket/train/"},
	} {
		r := runStoker(t, map[string]string{"STOKER_SERVER": closedAddr(t)}, args...)
		if r.code != 2 {
			t.Errorf("%q: exit %d, want 2", args, r.code)
		}
		shown := args
		if len(shown) > 4 {
			shown = append(shown[:3:3], "...")
		}
		got.WriteString("$ stoker " + strings.Join(shown, " ") + "\n" + r.stderr + "\n")
	}
	env := map[string]string{"STOKER_EPOCH": "one"}
	r := runStoker(t, env, "read", "s3://bucket/train/")
	got.WriteString("$ STOKER_EPOCH=one stoker read s3://bucket/train/\n" + r.stderr)
	clitest.Golden(t, "argument-hints", got.String())
}

// The members' table shows each tier apart and the distinct data, "-"
// where a server does not report it, and marks an unreachable member.
func TestClusterTableGolden(t *testing.T) {
	cached := uint64(65 << 20)
	resp := &stokerv1.MembersResponse{Self: "a", Members: []*stokerv1.Member{
		{Name: "a", State: "alive", GrpcAddr: "10.0.0.1:7470", Zone: "rack-1", OwnedShards: 50, OwnedBytes: 33 << 20, Stats: &stokerv1.StatsResponse{
			MemoryBytes: 65 << 20, MemoryCapacity: 1 << 30, DiskBytes: 65 << 20, DiskCapacity: 20 << 30, CachedBytes: &cached, MemoryHits: 90, Misses: 10}},
		{Name: "b-old-version", State: "alive", GrpcAddr: "10.0.0.2:7470", OwnedShards: 50, OwnedBytes: 32 << 20, Stats: &stokerv1.StatsResponse{
			MemoryBytes: 1 << 20, MemoryCapacity: 1 << 30, DiskCapacity: 0}},
		{Name: "c", State: "alive", GrpcAddr: "10.0.0.3:7470", Error: "connection refused"},
		{Name: "d", State: "dead", GrpcAddr: "10.0.0.4:7470"},
	}}
	var out strings.Builder
	printMembers(&out, resp, true)
	clitest.Golden(t, "cluster-table", out.String())
}
