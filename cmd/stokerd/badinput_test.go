package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/clients/stoker"
)

// firstErr reads an epoch and returns the first error.
func firstErr(c *stoker.Client, e stoker.Epoch) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, err := range c.Batches(ctx, e) {
		if err != nil {
			return err
		}
	}
	return nil
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	shards, _ := testDataset(t)
	good := shards[0].data
	e.s3.Put(t, bucket, "bad/shard-000000.tar", good)
	e.s3.Put(t, bucket, "bad/shard-000001.tar", good[:len(good)/2+100]) // cut inside a member
	e.s3.Put(t, bucket, "garbled/shard-000000.tar", bytes.Repeat([]byte("not a tar header "), 100))

	for _, tc := range []struct {
		name    string
		epoch   stoker.Epoch
		code    codes.Code
		mention string // a regular expression
	}{
		{"truncated shard", stoker.Epoch{URL: "s3://" + bucket + "/bad/", BatchSize: 4}, codes.DataLoss, "bad/shard-000001.tar"},
		{"garbled shard", stoker.Epoch{URL: "s3://" + bucket + "/garbled/", BatchSize: 4}, codes.DataLoss, "garbled/shard-000000.tar"},
		{"missing object", stoker.Epoch{URL: "s3://" + bucket + "/train/nope.tar", BatchSize: 4}, codes.NotFound, "nope.tar"},
		{"missing brace member", stoker.Epoch{URL: "s3://" + bucket + "/train/shard-{000006..000009}.tar", BatchSize: 4}, codes.NotFound, `shard-000007\.tar\b.*2 more of the 4 objects`},
		{"missing bucket", stoker.Epoch{URL: "s3://no-such-bucket/train/", BatchSize: 4}, codes.NotFound, "no-such-bucket"},
		{"unknown scheme", stoker.Epoch{URL: "gs://" + bucket + "/train/", BatchSize: 4}, codes.InvalidArgument, "gs"},
		{"batch size 0", stoker.Epoch{URL: e.url}, codes.InvalidArgument, "batch_size"},
		{"rank outside world", stoker.Epoch{URL: e.url, BatchSize: 4, Rank: 4, WorldSize: 4}, codes.InvalidArgument, "rank"},
		{"cursor past the end", stoker.Epoch{URL: e.url, BatchSize: 4, Start: 1 << 40}, codes.InvalidArgument, "cursor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A good stream runs beside the bad one and is not disturbed.
			var wg sync.WaitGroup
			wg.Go(func() { e.checkEpoch(t, readAll(t, e.client, stoker.Epoch{URL: e.url, Seed: 1, BatchSize: 8})) })
			err := firstErr(e.client, tc.epoch)
			wg.Wait()
			if status.Code(err) != tc.code || !regexp.MustCompile(tc.mention).MatchString(err.Error()) {
				t.Fatalf("got %v; want code %v naming %q", err, tc.code, tc.mention)
			}
		})
	}

	t.Run("bad credentials", func(t *testing.T) {
		env := append(e.s3.Env(), "AWS_SECRET_ACCESS_KEY=wrong-secret")
		srv := startStokerd(t, env, t.TempDir())
		c, err := stoker.Dial(srv.grpc)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		err = firstErr(c, stoker.Epoch{URL: e.url, BatchSize: 4})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), bucket) {
			t.Fatalf("got %v; want PermissionDenied naming the bucket", err)
		}
	})

	t.Run("stoker read exits non-zero naming the shard", func(t *testing.T) {
		cmd := exec.Command(filepath.Join(binDir, "stoker"), "read", "--server", e.srv.grpc, "s3://"+bucket+"/bad/", "--batch-size", "4")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "bad/shard-000001.tar") {
			t.Fatalf("stoker read: err %v, output:\n%s", err, out)
		}
	})

	t.Run("stoker read --jsonl", func(t *testing.T) {
		cmd := exec.Command(filepath.Join(binDir, "stoker"), "read", "--server", e.srv.grpc, e.url, "--epoch", "1", "--seed", "5",
			"--batch-size", "6", "--rank", "1", "--world-size", "2", "--jsonl")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("stoker read: %v\n%s", err, stderr.String())
		}
		lines := 0
		sc := bufio.NewScanner(&stdout)
		for sc.Scan() {
			var l sampleLineJSON
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("line %d: %v: %s", lines, err, sc.Text())
			}
			if l.Epoch != 1 || l.Rank != 1 || (l.Position/6)%2 != 1 || l.Step != l.Position/12 {
				t.Fatalf("line %d: wrong epoch/rank/step/position: %s", lines, sc.Text())
			}
			for name, f := range l.Fields {
				data := e.want[l.Key][name]
				h := sha256.Sum256(data)
				if f.Size != len(data) || f.SHA256 != hex.EncodeToString(h[:]) {
					t.Fatalf("line %d: %s.%s: size/sha256 differ from what was written", lines, l.Key, name)
				}
			}
			lines++
		}
		if lines == 0 || lines >= len(e.want) {
			t.Fatalf("rank 1 of 2 printed %d samples of %d", lines, len(e.want))
		}
		if !strings.Contains(stderr.String(), "samples") || !strings.Contains(stderr.String(), "iB/s") {
			t.Fatalf("no summary on stderr: %s", stderr.String())
		}
	})
}

type sampleLineJSON struct {
	Epoch    uint64 `json:"epoch"`
	Rank     int    `json:"rank"`
	Step     uint64 `json:"step"`
	Position uint64 `json:"position"`
	Key      string `json:"key"`
	Fields   map[string]struct {
		Size   int    `json:"size"`
		SHA256 string `json:"sha256"`
	} `json:"fields"`
}
