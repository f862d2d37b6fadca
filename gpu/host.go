package gpu

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Host is what this machine offers the delivery path.
type Host struct {
	GPUs Discovery
	// NUMANodes are the host's NUMA node ids from sysfs (empty: no NUMA).
	NUMANodes []int
	// MemlockBytes is RLIMIT_MEMLOCK's soft limit; Unlimited when none.
	MemlockBytes uint64
	// IPCLock says the process holds CAP_IPC_LOCK, so mlock ignores
	// MemlockBytes.
	IPCLock bool
	// HugePageBytes is the default huge page size (0: none); HugePagesFree
	// how many are free in the pool right now.
	HugePageBytes uint64
	HugePagesFree uint64
	// CuFile says whether libcufile was found and its driver opened;
	// CuFileReason says why not.
	CuFile       bool
	CuFileReason string
	// ShmDir is where shared-memory regions are made ("/dev/shm", or the
	// temporary folder when there is none).
	ShmDir string
}

// Unlimited is MemlockBytes when RLIMIT_MEMLOCK is unlimited.
const Unlimited = ^uint64(0)

// Probe gathers the host's facts. A missing GPU, NUMA or huge page pool
// is an answer, not an error; err is set only when NVML is present and
// fails (the rest of Host is still filled in).
func Probe() (Host, error) {
	var h Host
	var err error
	h.GPUs, err = Discover()
	h.NUMANodes = hostNUMANodes(SysfsRoot)
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_MEMLOCK, &rl) == nil {
		h.MemlockBytes = rl.Cur
		if rl.Cur == unix.RLIM_INFINITY {
			h.MemlockBytes = Unlimited
		}
	}
	h.IPCLock = hasCapability("/proc/self/status", capIPCLock)
	h.HugePageBytes, h.HugePagesFree = hugePages("/proc/meminfo")
	h.CuFile, h.CuFileReason = CuFileAvailable()
	h.ShmDir = ShmDir()
	return h, err
}

// ShmDir returns /dev/shm when it is a writable folder, else os.TempDir.
func ShmDir() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() && unix.Access("/dev/shm", unix.W_OK) == nil {
		return "/dev/shm"
	}
	return os.TempDir()
}

// hostNUMANodes lists /sys/devices/system/node/node<N>.
func hostNUMANodes(root string) []int {
	m, _ := filepath.Glob(filepath.Join(root, "devices/system/node/node[0-9]*"))
	var out []int
	for _, p := range m {
		if n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(p), "node")); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// capIPCLock is CAP_IPC_LOCK's bit in the capability sets.
const capIPCLock = 14

// hasCapability reads the CapEff line of a /proc status file.
func hasCapability(status string, bit uint) bool {
	b, err := os.ReadFile(status)
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<bit) != 0
		}
	}
	return false
}

// LockableBytes reports whether n bytes can be mlocked: the limit allows
// it, or CAP_IPC_LOCK lifts the limit.
func (h Host) LockableBytes(n uint64) bool {
	return h.IPCLock || h.MemlockBytes == Unlimited || h.MemlockBytes >= n
}

// hugePages reads Hugepagesize and HugePages_Free from a meminfo file.
func hugePages(meminfo string) (size, free uint64) {
	f, err := os.Open(meminfo)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		n, _ := strconv.ParseUint(fs[0], 10, 64)
		switch k {
		case "Hugepagesize":
			size = n << 10 // kB
		case "HugePages_Free":
			free = n
		}
	}
	return size, free
}
