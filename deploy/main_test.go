package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// binDir holds stokerd and stoker, built by TestMain the way the
// Dockerfile builds them (its go build line, run here).
var binDir string

// repoRoot is the repository (the parent of this module).
var repoRoot = func() string {
	abs, err := filepath.Abs("..")
	if err != nil {
		panic(err)
	}
	return abs
}()

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stoker-deploy-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := buildLikeDockerfile(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildLikeDockerfile runs the go build of the Dockerfile's default image
// (its "build" stage) in the repository, writing the binaries to dir.
func buildLikeDockerfile(dir string) error {
	df, err := parseDockerfile("Dockerfile")
	if err != nil {
		return err
	}
	env, args, err := df.goBuild("build")
	if err != nil {
		return err
	}
	for i, a := range args {
		if strings.HasPrefix(a, "/out") {
			args[i] = dir + "/"
		}
	}
	cmd := exec.Command("go", append([]string{"build"}, args...)...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s (the Dockerfile's, in %s): %w\n%s", strings.Join(args, " "), repoRoot, err, out)
	}
	return nil
}

// commandFlags returns the flag names a command's help lists (-name or
// --name), so the kit can be checked against the binary it runs.
func commandFlags(t *testing.T, args ...string) map[string]bool {
	t.Helper()
	out, _ := exec.Command(filepath.Join(binDir, args[0]), append(args[1:], "--help")...).CombinedOutput()
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+--?([a-z][a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) < 5 {
		t.Fatalf("%s --help lists %d flags:\n%s", strings.Join(args, " "), len(flags), out)
	}
	return flags
}

// unknownFlags returns the --flags in args that are not in known.
func unknownFlags(args []string, known map[string]bool) []string {
	var out []string
	for _, a := range args {
		if !strings.HasPrefix(a, "--") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !known[name] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
