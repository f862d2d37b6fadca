package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/stoker-data/stoker/cmd/internal/cli"
	"github.com/stoker-data/stoker/cmd/internal/clitest"
)

// runStokerd runs the stokerd command line in this process with args and
// the environment env; instead of serving, it returns the settings the
// server would have started with ("name=value" lines, every flag) and
// what was printed.
func runStokerd(t *testing.T, env map[string]string, args ...string) (settings, stdout, stderr string, code int) {
	t.Helper()
	t.Setenv("XDG_CACHE_HOME", "/home/user/.cache") // --cache-dir's default
	var got *pflag.FlagSet
	var c *cobra.Command
	c = newRoot(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, func(flags) error {
		got = c.Flags()
		return nil
	})
	var out, errOut bytes.Buffer
	c.SetOut(&out)
	c.SetErr(&errOut)
	code = cli.Run(context.Background(), c, args, &errOut, nil)
	if got != nil {
		var lines []string
		got.VisitAll(func(f *pflag.Flag) {
			src := "default"
			if f.Changed {
				src = "set"
			}
			lines = append(lines, fmt.Sprintf("%s=%s (%s)", f.Name, f.Value, src))
		})
		settings = strings.Join(lines, "\n") + "\n"
	}
	return settings, out.String(), errOut.String(), code
}

func TestHelpGolden(t *testing.T) {
	_, out, errOut, code := runStokerd(t, nil, "--help")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	clitest.Golden(t, "help", out)
	_, out2, _, _ := runStokerd(t, nil, "-h")
	if out2 != out {
		t.Error("-h and --help differ")
	}
}

func TestVersionGolden(t *testing.T) {
	_, out, _, code := runStokerd(t, nil, "--version")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	clitest.Golden(t, "version", clitest.Toolchain(out))
}

// Settings come from the command line, then $STOKERD_*, then the
// --config file, then the defaults; the file may be YAML or TOML.
func TestSettingsPrecedenceGolden(t *testing.T) {
	dir := t.TempDir()
	yaml := filepath.Join(dir, "stokerd.yaml")
	toml := filepath.Join(dir, "stokerd.toml")
	if err := os.WriteFile(yaml, []byte(`# every source in play
listen: 10.0.0.1:7470        # the command line wins
memory-cache: 2GiB           # the environment wins
disk-cache: 500GiB
s3_path_style: true          # underscores work too
s3-read-timeout: 1m
max-fetches: 32
allow-s3: [s3://datasets/train/, s3://datasets/val/]
zone-local-owners: true
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(toml, []byte(`listen = "10.0.0.1:7470"
memory-cache = "2GiB"
disk-cache = "500GiB"
s3_path_style = true
s3-read-timeout = "1m"
max-fetches = 32
allow-s3 = ["s3://datasets/train/", "s3://datasets/val/"]
zone-local-owners = true
`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"STOKERD_MEMORY_CACHE": "8GiB", "STOKERD_ZONE": "rack-7", "STOKERD_CONFIG": yaml}
	var first string
	for _, file := range []string{yaml, toml} {
		env["STOKERD_CONFIG"] = file
		settings, _, errOut, code := runStokerd(t, env, "--listen", "127.0.0.1:9000", "--unix", "/run/stoker.sock")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", file, code, errOut)
		}
		settings = strings.ReplaceAll(settings, file, "CONFIG")
		if first == "" {
			first = settings
			clitest.Golden(t, "settings", settings)
		} else if settings != first {
			t.Errorf("the TOML file gives other settings than the YAML one:\n%s\n%s", settings, first)
		}
	}
}

// A bad setting ends the process with status 2, naming where it came from.
func TestSettingsErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("memory-cach: 8GiB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"--config", bad}, `stokerd: config ` + bad + `: unknown key "memory-cach": the keys are the flags' names (see --help)`},
		{map[string]string{"STOKERD_MAX_FETCHES": "many"}, nil, `stokerd: $STOKERD_MAX_FETCHES="many": invalid argument "many" for "--max-fetches" flag: must be an integer`},
		{nil, []string{"--max-fetches", "many"}, `stokerd: invalid argument "many" for "--max-fetches" flag: must be an integer`},
		{nil, []string{"--memory-cach", "8GiB"}, `stokerd: unknown flag: --memory-cach`},
		{nil, []string{"serve"}, `stokerd: stokerd takes no arguments, only flags; got ["serve"]`},
	} {
		_, _, errOut, code := runStokerd(t, tc.env, tc.args...)
		if want := tc.want + "\nSee 'stokerd --help'.\n"; code != 2 || errOut != want {
			t.Errorf("%v %v: exit %d\n%s\nwant exit 2\n%s", tc.env, tc.args, code, errOut, want)
		}
	}
}

// Go's flag package took -listen as --listen: scripts written so still run.
func TestOneDashFlags(t *testing.T) {
	settings, _, errOut, code := runStokerd(t, nil, "-listen", "127.0.0.1:9000", "-s3-path-style")
	if code != 0 || !strings.Contains(settings, "listen=127.0.0.1:9000 (set)") || !strings.Contains(settings, "s3-path-style=true (set)") {
		t.Errorf("exit %d %s\n%s", code, errOut, settings)
	}
}

// stokerd prints a completion script for each shell, and its completion
// requests offer a flag's values.
func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		if _, out, errOut, code := runStokerd(t, nil, "completion", sh); code != 0 || !strings.Contains(out, "stokerd") {
			t.Errorf("completion %s: exit %d: %s", sh, code, errOut)
		}
	}
	if _, out, _, _ := runStokerd(t, nil, "__complete", "--memory-region", ""); !strings.Contains(out, "locked\n") {
		t.Errorf("completing --memory-region:\n%s", out)
	}
}
