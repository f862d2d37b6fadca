package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stoker-data/stoker/cmd/internal/cli"
)

// result is what one run of the stoker command printed and its status.
type result struct {
	stdout, stderr string
	code           int
}

// runStoker runs the stoker command in this process with args and the
// environment env (nothing of the test's own environment is seen).
func runStoker(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	root := newRoot(func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	code := cli.Run(context.Background(), root, args, &stderr, explain)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}
