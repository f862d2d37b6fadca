// Package clitest compares the stoker and stokerd commands' output with
// golden files under testdata/ (go test -update rewrites them). It imports
// nothing of Stoker.
package clitest

import (
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with what the commands print now")

// Golden compares got with testdata/NAME.golden.
func Golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("%s: the output differs from %s (go test -update rewrites it after a deliberate change)\n--- got:\n%s\n--- want:\n%s", name, path, got, want)
	}
}

// Toolchain replaces this build's Go version and platform in s by
// GOVERSION and GOOS/GOARCH, which a golden file cannot know.
func Toolchain(s string) string {
	s = strings.ReplaceAll(s, runtime.Version(), "GOVERSION")
	return strings.ReplaceAll(s, runtime.GOOS+"/"+runtime.GOARCH, "GOOS/GOARCH")
}
