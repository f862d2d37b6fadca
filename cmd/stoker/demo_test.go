package main

import (
	"bytes"
	"context"
	"regexp"
	"testing"
)

// The demo writes its dataset, serves it in process and prints one row per
// epoch with every sample read.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := runDemo(context.Background(), []string{"--shards", "4", "--samples", "16", "--sample-size", "4096"}, &out); err != nil {
		t.Fatal(err)
	}
	rows := regexp.MustCompile(`(?m)^\s+([01])\s+64\s+[\d.]+\s+[\d.]+\s+[\d.]+%\s+\S+\s*$`).FindAllStringSubmatch(out.String(), -1)
	if len(rows) != 2 {
		t.Fatalf("want two epoch rows of 64 samples, got:\n%s", out.String())
	}
}

func TestParseInterspersed(t *testing.T) {
	fs := newReadFlags()
	pos, err := parseInterspersed(fs.set, []string{"--server", "a:1", "s3://b/x/", "--epoch", "3", "--jsonl"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pos) != 1 || pos[0] != "s3://b/x/" || *fs.addr != "a:1" || fs.epoch.Epoch != 3 || !*fs.jsonl {
		t.Fatalf("parsed %v server %q epoch %d jsonl %v", pos, *fs.addr, fs.epoch.Epoch, *fs.jsonl)
	}
}
