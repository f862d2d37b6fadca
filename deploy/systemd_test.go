package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The unit's ExecStart runs stokerd with flags it has, and passes
// systemd-analyze verify where systemd is installed.
func TestSystemdUnit(t *testing.T) {
	raw, err := os.ReadFile("systemd/stokerd.service")
	if err != nil {
		t.Fatal(err)
	}
	exec_ := regexp.MustCompile(`(?m)^ExecStart=(\S+)\s+(.*)$`).FindSubmatch(raw)
	if exec_ == nil || string(exec_[1]) != "/usr/local/bin/stokerd" {
		t.Fatalf("ExecStart %q: want /usr/local/bin/stokerd", exec_)
	}
	if bad := unknownFlags(strings.Fields(string(exec_[2])), commandFlags(t, "stokerd")); len(bad) > 0 {
		t.Errorf("ExecStart passes flags stokerd does not have: %v", bad)
	}
	for _, want := range []string{"User=stoker", "KillSignal=SIGTERM", "Restart=on-failure", "LimitMEMLOCK=infinity", "NoNewPrivileges=yes"} {
		if !strings.Contains(string(raw), "\n"+want+"\n") {
			t.Errorf("the unit lacks %s", want)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: only the flags were checked")
	}
	// verify needs ExecStart's binary: the one the Dockerfile builds.
	dir := t.TempDir()
	unit := filepath.Join(dir, "stokerd.service")
	fixed := strings.Replace(string(raw), "/usr/local/bin/stokerd", filepath.Join(binDir, "stokerd"), 1)
	if err := os.WriteFile(unit, []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", unit).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// verify is a real check: a misspelt directive fails it.
	bad := filepath.Join(dir, "bad.service")
	if err := os.WriteFile(bad, []byte(strings.Replace(fixed, "Restart=on-failure", "Restart=sometimes", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command(analyze, "verify", bad).CombinedOutput(); !strings.Contains(string(out), "restart specifier") {
		t.Fatalf("systemd-analyze verify passed Restart=sometimes without a word:\n%s", out)
	}
}

// The shell scripts of the kit pass shellcheck (where it is installed:
// make test's set-up installs it with chromium).
func TestShellScripts(t *testing.T) {
	bin, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skip("shellcheck is not installed")
	}
	scripts, _ := filepath.Glob("slurm/*.sh")
	ci, _ := filepath.Glob("ci/*.sh")
	scripts = append(scripts, ci...)
	if len(scripts) < 4 {
		t.Fatalf("scripts %v", scripts)
	}
	if out, err := exec.Command(bin, append([]string{"--shell=bash"}, scripts...)...).CombinedOutput(); err != nil {
		t.Fatalf("shellcheck: %v\n%s", err, out)
	}
}
