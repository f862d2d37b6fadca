//go:build gpu

package gpu

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// These run only on a host with an NVIDIA GPU: go test -tags gpu ./gpu

func TestNVMLSeesTheGPU(t *testing.T) {
	d, err := Discover()
	if err != nil {
		t.Fatal(err)
	}
	if !d.NVML || len(d.Devices) == 0 {
		t.Fatalf("NVML found no GPU: %s", d)
	}
	for _, g := range d.Devices {
		if g.UUID == "" || g.MemoryBytes == 0 || !strings.Contains(g.BusID, ":") {
			t.Fatalf("incomplete device: %+v", g)
		}
	}
	t.Log(d)
}

// TestCuFileReadsCorrectBytes reads an extent into GPU memory (by cuFile,
// compatibility mode included, or the pinned fallback) and copies it back.
func TestCuFileReadsCorrectBytes(t *testing.T) {
	data := make([]byte, 8<<20)
	for i := range data {
		data[i] = byte(i*31 + i>>12)
	}
	path := filepath.Join(t.TempDir(), "shard")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	e := Extent{Path: path, Offset: 3 * Align, Length: 4 << 20}
	dev, err := AllocDevice(int(e.Length))
	if err != nil {
		t.Fatal(err)
	}
	defer FreeDevice(dev)
	staging, err := AllocPinned(int(e.Length))
	if err != nil {
		t.Fatal(err)
	}
	defer staging.Close()
	p, err := ReadToDevice(e, dev, staging)
	if err != nil {
		t.Fatal(err)
	}
	back := make([]byte, e.Length)
	if err := CopyFromDevice(back, dev); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, data[e.Offset:e.Offset+e.Length]) {
		t.Fatalf("path %s: bytes in GPU memory differ from the file", p)
	}
	ok, why := CuFileAvailable()
	t.Logf("path %s (cufile %v %s)", p, ok, why)
	if !ok {
		return
	}
	// cuFile itself, without the fallback: say why it failed, or check its bytes.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := CopyToDevice(make([]byte, e.Length), dev); err != nil {
		t.Fatal(err)
	}
	if err := cuFileRead(f, e.Offset, dev, int(e.Length)); err != nil {
		t.Logf("cuFile read failed (ReadToDevice falls back to pinned): %v", err)
		return
	}
	if err := CopyFromDevice(back, dev); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, data[e.Offset:e.Offset+e.Length]) {
		t.Fatal("cuFile read wrong bytes")
	}
	t.Log("cuFile read the right bytes")
}

// TestMemoryTierOnTheGPUsNode places a region where MemoryNode says and
// checks that its pages are there; a one-node host has no choice to check.
func TestMemoryTierOnTheGPUsNode(t *testing.T) {
	h, err := Probe()
	if err != nil {
		t.Fatal(err)
	}
	node, why := MemoryNode(h.GPUs, h.NUMANodes)
	t.Log(why)
	if node < 0 {
		t.Skip("no NUMA choice on this host")
	}
	p, err := AllocPinnedOn(64<<20, node)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.NodeErr != nil {
		t.Fatal(p.NodeErr)
	}
	b := p.Bytes()
	for i := 0; i < len(b); i += Align {
		b[i] = 1
	}
	if got, err := p.PageNode(); err != nil || got != node {
		t.Fatalf("PageNode = %d, %v; want %d", got, err, node)
	}
}
