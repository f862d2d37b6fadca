package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/stoker-data/stoker/gpu"
	"github.com/stoker-data/stoker/server"
)

// The plan says the tier stays private when the shm folder has less room
// than the tier, and shared when it fits.
func TestDoctorPlanShmRoom(t *testing.T) {
	h := gpu.Host{ShmDir: t.TempDir(), MemlockBytes: gpu.Unlimited}
	free, ok := shmFree(h.ShmDir)
	if !ok {
		t.Fatal("statfs of a temporary folder failed")
	}
	for _, tc := range []struct {
		memory uint64
		want   string
	}{
		{free + 1<<30, "tier sharing:  no: " + h.ShmDir + " has"},
		{1 << 20, "tier sharing:  a file in " + h.ShmDir},
	} {
		lines := strings.Join(plan(h, tc.memory, gpu.RegionLocked, false, false), "\n")
		if !strings.Contains(lines, tc.want) {
			t.Errorf("memory %d: plan lacks %q:\n%s", tc.memory, tc.want, lines)
		}
	}
}

// A server's host facts print as this host's do: hostOf reads back every
// field the server sends.
func TestDoctorHostOfServer(t *testing.T) {
	h := gpu.Host{
		GPUs: gpu.Discovery{NVML: true, Reason: "r", DriverVersion: "550.1", Devices: []gpu.Device{
			{Index: 0, Name: "H200", UUID: "GPU-a", MemoryBytes: 141 << 30, BusID: "0000:17:00.0", NUMANode: 0},
			{Index: 1, Name: "H200", UUID: "GPU-b", MemoryBytes: 141 << 30, BusID: "0000:65:00.0", NUMANode: 1},
		}},
		NUMANodes: []int{0, 1}, MemlockBytes: gpu.Unlimited, IPCLock: true, HugePageBytes: 2 << 20, HugePagesFree: 7,
		CuFile: true, CuFileReason: "c", ShmDir: "/dev/shm",
	}
	if got := hostOf(server.HostProto(h)); !reflect.DeepEqual(got, h) {
		t.Errorf("hostOf(HostProto(h)) = %+v, want %+v", got, h)
	}
	var local, remote strings.Builder
	printHost(&local, h)
	printHost(&remote, hostOf(server.HostProto(gpu.Host{ShmDir: "/tmp"})))
	if !strings.Contains(local.String(), "1: H200 GPU-b, 141 GiB, bus 0000:65:00.0, numa node 1") ||
		!strings.Contains(remote.String(), "gpus:          none (no NVML: )") {
		t.Errorf("printHost:\n%s\n%s", local.String(), remote.String())
	}
}
