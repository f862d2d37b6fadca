package main

import (
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
		lines := strings.Join(plan(h, tc.memory, server.RegionLocked, false, false), "\n")
		if !strings.Contains(lines, tc.want) {
			t.Errorf("memory %d: plan lacks %q:\n%s", tc.memory, tc.want, lines)
		}
	}
}
