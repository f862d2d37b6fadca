package gpu

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func TestDiscoverWithoutGPUIsAnAnswer(t *testing.T) {
	d, err := Discover()
	if err != nil {
		t.Fatalf("Discover on this host: %v", err)
	}
	if !d.NVML && d.Reason == "" {
		t.Fatal("no NVML but no reason given")
	}
	t.Logf("discovery: %s", d)
}

func TestProbe(t *testing.T) {
	h, err := Probe()
	if err != nil {
		t.Fatal(err)
	}
	if h.MemlockBytes == 0 && h.ShmDir == "" {
		t.Fatalf("probe filled nothing: %+v", h)
	}
	if ok, why := CuFileAvailable(); ok != h.CuFile || (!ok && why == "") {
		t.Fatalf("cufile: %v %q vs probe %v", ok, why, h.CuFile)
	}
	t.Logf("%+v", h)
}

func TestNormalizeBusID(t *testing.T) {
	for in, want := range map[string]string{
		"00000000:17:00.0":         "0000:17:00.0",
		"0000:AB:00.0":             "0000:ab:00.0",
		"00000001:3B:00.0\x00\x00": "0001:3b:00.0",
	} {
		if got := normalizeBusID(in); got != want {
			t.Errorf("normalizeBusID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNUMANodeFromSysfs(t *testing.T) {
	root := t.TempDir()
	dev := filepath.Join(root, "bus/pci/devices/0000:17:00.0")
	if err := os.MkdirAll(dev, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dev, "numa_node"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := numaNode(root, "0000:17:00.0"); n != 1 {
		t.Fatalf("numa node %d, want 1", n)
	}
	if n := numaNode(root, "0000:18:00.0"); n != -1 {
		t.Fatalf("missing device: numa node %d, want -1", n)
	}
}

func TestHugePagesFromMeminfo(t *testing.T) {
	p := filepath.Join(t.TempDir(), "meminfo")
	if err := os.WriteFile(p, []byte("MemTotal: 100 kB\nHugePages_Free:       7\nHugepagesize:       2048 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if size, free := hugePages(p); size != 2<<20 || free != 7 {
		t.Fatalf("huge pages %d x %d", free, size)
	}
}

func TestPinnedRegion(t *testing.T) {
	p, err := AllocPinned(3<<20 + 5)
	if err != nil {
		t.Fatal(err)
	}
	b := p.Bytes()
	if len(b) != 3<<20+5 {
		t.Fatalf("len %d", len(b))
	}
	for i := range b {
		b[i] = byte(i)
	}
	if b[len(b)-1] != byte(len(b)-1) {
		t.Fatal("region did not keep a write")
	}
	if !p.Locked && p.LockErr == nil {
		t.Fatal("not locked and no reason")
	}
	t.Logf("huge pages %v, locked %v (%v)", p.HugePages, p.Locked, p.LockErr)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

func TestArenaAllocFreeMerges(t *testing.T) {
	p, err := AllocPinned(64 * Align)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	a := NewArena(p)
	r := rand.New(rand.NewPCG(1, 2))
	var live [][]byte
	for i := range 2000 {
		if len(live) > 0 && (r.IntN(2) == 0 || i%7 == 0) {
			j := r.IntN(len(live))
			a.Free(live[j])
			live = append(live[:j], live[j+1:]...)
			continue
		}
		n := 1 + r.IntN(5*Align)
		if b, ok := a.Alloc(n); ok {
			if len(b) != n || cap(b)%Align != 0 {
				t.Fatalf("alloc %d: len %d cap %d", n, len(b), cap(b))
			}
			live = append(live, b)
		}
	}
	// Allocations never overlap: fill each with its own mark and check.
	for i, b := range live {
		for k := range b {
			b[k] = byte(i)
		}
	}
	for i, b := range live {
		if !bytes.Equal(b, bytes.Repeat([]byte{byte(i)}, len(b))) {
			t.Fatalf("allocation %d overlaps another", i)
		}
	}
	for _, b := range live {
		a.Free(b)
	}
	if a.Used() != 0 {
		t.Fatalf("used %d after freeing all", a.Used())
	}
	if b, ok := a.Alloc(64 * Align); !ok || len(b) != 64*Align {
		t.Fatal("free extents were not merged back into one")
	}
}

func TestArenaFreeOfForeignSlicePanics(t *testing.T) {
	p, err := AllocPinned(4 * Align)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	a := NewArena(p)
	defer func() {
		if recover() == nil {
			t.Fatal("freeing a foreign slice did not panic")
		}
	}()
	a.Free(make([]byte, Align))
}

// TestReadToDeviceFallsBack checks the path a host without cuFile takes:
// the extent comes through the pinned buffer with the right bytes, and the
// device copy reports that there is no CUDA.
func TestReadToDeviceFallsBack(t *testing.T) {
	if ok, _ := CuFileAvailable(); ok {
		t.Skip("cuFile is present: the gpu-tagged tests cover it")
	}
	data := make([]byte, 3*Align+17)
	for i := range data {
		data[i] = byte(i * 7)
	}
	path := filepath.Join(t.TempDir(), "shard")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	staging, err := AllocPinned(len(data))
	if err != nil {
		t.Fatal(err)
	}
	defer staging.Close()
	e := Extent{Path: path, Offset: Align + 3, Length: int64(Align + 9)}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ReadPinned(f, e, staging)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data[e.Offset:e.Offset+e.Length]) {
		t.Fatal("pinned read returned wrong bytes")
	}
	p, err := ReadToDevice(e, 0, staging)
	if p != PathPinned {
		t.Fatalf("path %q, want the pinned fallback", p)
	}
	if _, cerr := AllocDevice(1); cerr == nil {
		t.Skip("a CUDA runtime is present")
	}
	if err == nil {
		t.Fatal("device copy without CUDA succeeded")
	}
	if _, err := ReadPinned(f, Extent{Path: path, Length: int64(len(data)) + 1}, staging); err == nil {
		t.Fatal("a read larger than the staging buffer succeeded")
	}
}

func TestHasCapability(t *testing.T) {
	dir := t.TempDir()
	write := func(caps string) string {
		p := filepath.Join(dir, "status")
		if err := os.WriteFile(p, []byte("Name:\tstokerd\nCapPrm:\t0000000000004000\nCapEff:\t"+caps+"\nCapBnd:\t000001ffffffffff\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if !hasCapability(write("0000000000004000"), capIPCLock) {
		t.Error("CapEff with bit 14 set: CAP_IPC_LOCK not found")
	}
	if hasCapability(write("0000000000000400"), capIPCLock) {
		t.Error("CapEff without bit 14: CAP_IPC_LOCK found")
	}
	if hasCapability(filepath.Join(dir, "missing"), capIPCLock) {
		t.Error("a missing status file must mean no capability")
	}
	h := Host{MemlockBytes: 8 << 20}
	if h.LockableBytes(1<<30) || !h.LockableBytes(4<<20) {
		t.Error("LockableBytes must follow the mlock limit")
	}
	if h.IPCLock = true; !h.LockableBytes(1 << 30) {
		t.Error("CAP_IPC_LOCK lifts the mlock limit")
	}
}

// A shared region is a file another mapping sees the same bytes through;
// its pages are allocated up front, and Close removes the file.
func TestSharedRegion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tier.shm")
	r, err := AllocRegion(3*Align+10, RegionOptions{Node: 0, Path: path})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Size() != 4*Align {
		t.Fatalf("region file: %v, %v", st, err)
	}
	copy(r.Bytes()[Align:], "through the region")
	other, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(other[Align:], []byte("through the region")) {
		t.Fatalf("the file does not show the region's bytes: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("Close left the region file: %v", err)
	}
	if _, err := AllocRegion(Align, RegionOptions{Node: -1, Path: filepath.Join(t.TempDir(), "missing", "tier.shm")}); err == nil {
		t.Fatal("a region in a missing folder must fail")
	}
}
