package main

import (
	"regexp"
	"testing"
)

// The demo writes its dataset, serves it in process and prints one row per
// epoch with every sample read.
func TestDemo(t *testing.T) {
	r := runStoker(t, nil, "demo", "--shards", "4", "--samples", "16", "--sample-size", "4096")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	// 64 samples of a 4 KiB image and small fields each: 260 KiB or so.
	rows := regexp.MustCompile(`(?m)^\s+([01])\s+64\s+2\d\d KiB\s+[\d.]+ [KMG]?i?B/s\s+[\d.]+%\s+\S+\s*$`).FindAllStringSubmatch(r.stdout, -1)
	if len(rows) != 2 {
		t.Fatalf("want two epoch rows of 64 samples with human sizes, got:\n%s", r.stdout)
	}
}

// Flags come before and after the URL, as the README writes them.
func TestReadFlagsAroundTheURL(t *testing.T) {
	c := newReadCmd(func(string) (string, bool) { return "", false })
	if err := c.ParseFlags([]string{"--server", "a:1", "s3://b/x/", "--epoch", "3", "--jsonl"}); err != nil {
		t.Fatal(err)
	}
	fs := c.Flags()
	if v, _ := fs.GetString("server"); v != "a:1" {
		t.Errorf("--server %q", v)
	}
	if v, _ := fs.GetUint64("epoch"); v != 3 {
		t.Errorf("--epoch %d", v)
	}
	if args := fs.Args(); len(args) != 1 || args[0] != "s3://b/x/" {
		t.Errorf("arguments %q", args)
	}
}
