package cli

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// listValue is a repeatable flag, as stokerd's --allow-s3.
type listValue []string

func (l *listValue) String() string           { return strings.Join(*l, ",") }
func (l *listValue) Set(v string) error       { *l = append(*l, v); return nil }
func (*listValue) Type() string               { return "list" }
func (l *listValue) Append(v string) error    { return l.Set(v) }
func (l *listValue) Replace(v []string) error { *l = append((*l)[:0], v...); return nil }
func (l *listValue) GetSlice() []string       { return *l }

// testFlags is a flag set of each kind a command uses.
type testFlags struct {
	fs      *pflag.FlagSet
	listen  string
	memory  string
	fetches int
	path    bool
	timeout time.Duration
	allow   listValue
	config  string
}

func newTestFlags(t *testing.T, args ...string) *testFlags {
	t.Helper()
	f := &testFlags{fs: pflag.NewFlagSet("t", pflag.ContinueOnError)}
	f.fs.StringVar(&f.listen, "listen", "127.0.0.1:7470", "")
	f.fs.StringVar(&f.memory, "memory-cache", "1GiB", "")
	f.fs.IntVar(&f.fetches, "max-fetches", 8, "")
	f.fs.BoolVar(&f.path, "s3-path-style", false, "")
	f.fs.DurationVar(&f.timeout, "s3-read-timeout", 30*time.Second, "")
	f.fs.Var(&f.allow, "allow-s3", "")
	f.fs.StringVar(&f.config, "config", "", "")
	if err := f.fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return f
}

func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestEnvName(t *testing.T) {
	if got := EnvName("STOKERD", "memory-cache"); got != "STOKERD_MEMORY_CACHE" {
		t.Errorf("EnvName = %q", got)
	}
}

// The command line wins over the environment; the environment sets the
// rest, a list flag from a comma-separated list.
func TestBindEnv(t *testing.T) {
	f := newTestFlags(t, "--listen", "0.0.0.0:1")
	err := BindEnv(f.fs, "STOKERD", env("STOKERD_LISTEN", "9.9.9.9:9", "STOKERD_MEMORY_CACHE", "8GiB",
		"STOKERD_MAX_FETCHES", "3", "STOKERD_S3_PATH_STYLE", "true", "STOKERD_ALLOW_S3", "s3://a/, s3://b/"))
	if err != nil {
		t.Fatal(err)
	}
	if f.listen != "0.0.0.0:1" || f.memory != "8GiB" || f.fetches != 3 || !f.path || strings.Join(f.allow, " ") != "s3://a/ s3://b/" {
		t.Errorf("listen %q memory %q fetches %d path-style %v allow %q", f.listen, f.memory, f.fetches, f.path, f.allow)
	}
	f = newTestFlags(t)
	err = BindEnv(f.fs, "STOKERD", env("STOKERD_MAX_FETCHES", "many"))
	if err == nil || !strings.Contains(err.Error(), `$STOKERD_MAX_FETCHES="many"`) {
		t.Errorf("a bad value: %v, want an error naming the variable", err)
	}
	f = newTestFlags(t)
	if err := BindEnv(f.fs, "STOKERD", env("STOKERD_CONFIG", "x.yaml"), "config"); err != nil || f.config != "" {
		t.Errorf("a skipped flag was set: %q, %v", f.config, err)
	}
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// YAML and TOML files set the flags nothing higher set; keys may use
// underscores; lists and scalars of every kind parse.
func TestApplyConfigFile(t *testing.T) {
	for name, text := range map[string]string{
		"c.yaml": "listen: 1.1.1.1:1\nmemory-cache: 8GiB\nmax_fetches: 3\ns3-path-style: true\ns3-read-timeout: 1m\nallow-s3: [s3://a/, s3://b/]\n",
		"c.toml": "listen = \"1.1.1.1:1\"\nmemory-cache = \"8GiB\"\nmax_fetches = 3\ns3-path-style = true\ns3-read-timeout = \"1m\"\nallow-s3 = [\"s3://a/\", \"s3://b/\"]\n",
		"c.json": `{"listen": "1.1.1.1:1", "memory-cache": "8GiB", "max_fetches": 3, "s3-path-style": true, "s3-read-timeout": "1m", "allow-s3": ["s3://a/", "s3://b/"]}`,
	} {
		f := newTestFlags(t, "--listen", "0.0.0.0:1")
		if err := ApplyConfigFile(f.fs, writeFile(t, name, text), "config"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if f.listen != "0.0.0.0:1" || f.memory != "8GiB" || f.fetches != 3 || !f.path || f.timeout != time.Minute || strings.Join(f.allow, " ") != "s3://a/ s3://b/" {
			t.Errorf("%s: listen %q memory %q fetches %d path-style %v timeout %v allow %q", name, f.listen, f.memory, f.fetches, f.path, f.timeout, f.allow)
		}
	}
}

func TestApplyConfigFileErrors(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"c.yaml", "memory-cach: 8GiB\n", `unknown key "memory-cach"`},
		{"c.yaml", "config: other.yaml\n", `unknown key "config"`},
		{"c.yaml", "listen:\n  host: a\n", "listen: want a value or a list of values"},
		{"c.yaml", "max-fetches: many\n", "max-fetches: invalid argument"},
		{"c.yaml", "listen: [a, b]\n", "--listen takes one value, got 2"},
		{"c.yaml", "listen: 1\n  bad: indent\n", "yaml"},
		{"c.toml", "listen = \n", "toml"},
		{"c.ini", "listen=x\n", `want a .yaml, .yml, .json or .toml file, got ".ini"`},
	} {
		path := writeFile(t, tc.name, tc.text)
		err := ApplyConfigFile(newTestFlags(t).fs, path, "config")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s %q: %v, want an error naming the file and %q", tc.name, tc.text, err, tc.want)
		}
	}
	if err := ApplyConfigFile(newTestFlags(t).fs, filepath.Join(t.TempDir(), "none.yaml")); err == nil || !strings.Contains(err.Error(), "none.yaml") {
		t.Errorf("a missing file: %v", err)
	}
	big := writeFile(t, "big.yaml", "# "+strings.Repeat("x", maxConfigBytes)+"\n")
	if err := ApplyConfigFile(newTestFlags(t).fs, big); err == nil || !strings.Contains(err.Error(), "over") {
		t.Errorf("a file over the limit: %v", err)
	}
}

// Long flags with one dash are read as Go's flag package read them; a
// shorthand, a value, and anything after "--" are left alone.
func TestOneDashLongFlags(t *testing.T) {
	root := &cobra.Command{Use: "x"}
	sub := &cobra.Command{Use: "read"}
	sub.Flags().String("server", "", "")
	sub.Flags().Bool("jsonl", false, "")
	sub.Flags().BoolP("quiet", "q", false, "")
	root.AddCommand(sub)
	got := OneDashLongFlags(root, []string{"read", "-server", "a:1", "-jsonl=true", "-q", "-5", "-help", "-unknown", "--", "-server"})
	want := "read --server a:1 --jsonl=true -q -5 --help -unknown -- -server"
	if strings.Join(got, " ") != want {
		t.Errorf("got  %q\nwant %q", strings.Join(got, " "), want)
	}
}

func TestVersionFrom(t *testing.T) {
	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"}}
	for _, tc := range []struct {
		name, linked string
		bi           *debug.BuildInfo
		want         string
	}{
		{"-X wins", "v1.2.3", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.1"}}, "v1.2.3"},
		{"go install @version", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.4.0"}}, "v0.4.0"},
		{"a checkout", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs}, "devel (commit 0123456789ab, 2026-01-02T03:04:05Z, modified)"},
		{"no information", "", nil, "devel"},
	} {
		if got := versionFrom(tc.linked, tc.bi); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
