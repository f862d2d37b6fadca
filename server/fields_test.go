package server

import (
	"archive/tar"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// writeTar writes a shard of samples, each a key and its fields' names in
// archive order.
func writeTar(tb testing.TB, path string, samples [][]string) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := tar.NewWriter(f)
	for _, s := range samples {
		for _, field := range s[1:] {
			body := []byte(s[0] + "." + field)
			if err := w.WriteHeader(&tar.Header{Name: s[0] + "." + field, Mode: 0o644, Size: int64(len(body))}); err != nil {
				tb.Fatal(err)
			}
			if _, err := w.Write(body); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

// OpenDataset with fields returns the union of the samples' field names,
// with how many samples have each, from every shard's index.
func TestOpenDatasetFieldsAreTheUnionOverShards(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTar(t, filepath.Join(data, "a-0.tar"), [][]string{{"k0", "cls", "jpg", "txt"}, {"k1", "cls", "jpg"}})
	writeTar(t, filepath.Join(data, "a-1.tar"), [][]string{{"k2", "cls", "jpg"}, {"k3", "cls", "jpg", "seg.json"}})
	h := serveDir(t, dir, 1<<30, nil)
	api := stokerv1.NewLoaderClient(dialRaw(t, h.addr))
	ctx := context.Background()

	plain, err := api.OpenDataset(ctx, &stokerv1.OpenDatasetRequest{Url: h.url})
	if err != nil {
		t.Fatal(err)
	}
	if len(plain.GetDataset().GetFields()) != 0 {
		t.Errorf("fields without asking: %v", plain.GetDataset().GetFields())
	}
	resp, err := api.OpenDataset(ctx, &stokerv1.OpenDatasetRequest{Url: h.url, Fields: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range resp.GetDataset().GetFields() {
		got = append(got, fmt.Sprintf("%s:%d", f.GetName(), f.GetSamples()))
	}
	if want := "cls:4 jpg:4 seg.json:1 txt:1"; strings.Join(got, " ") != want {
		t.Errorf("fields %q, want %q", strings.Join(got, " "), want)
	}
	if d := resp.GetDataset(); !d.GetCounted() || d.GetNumSamples() != 4 {
		t.Errorf("counted %v, %d samples: loading the indexes counts the shards", d.GetCounted(), d.GetNumSamples())
	}
}

// A shard that cannot be indexed fails the open that asks for fields,
// naming the shard.
func TestOpenDatasetFieldsNameACorruptShard(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTar(t, filepath.Join(data, "good.tar"), [][]string{{"k0", "cls"}})
	bad := filepath.Join(data, "bad.tar")
	writeTar(t, bad, [][]string{{"k1", "cls", "txt"}, {"k2", "cls"}})
	b, err := os.ReadFile(bad)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, b[:1536+2], 0o644); err != nil { // inside the second member's data
		t.Fatal(err)
	}
	h := serveDir(t, dir, 1<<30, nil)
	api := stokerv1.NewLoaderClient(dialRaw(t, h.addr))
	_, err = api.OpenDataset(context.Background(), &stokerv1.OpenDatasetRequest{Url: h.url, Fields: true})
	if status.Code(err) != codes.DataLoss || !strings.Contains(err.Error(), "bad.tar") {
		t.Fatalf("err %v, want DataLoss naming bad.tar", err)
	}
}
