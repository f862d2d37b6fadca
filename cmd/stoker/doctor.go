package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/stoker-data/stoker/gpu"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// doctorOptions are the flags of `stoker doctor`.
type doctorOptions struct {
	dial                 *dialFlags
	sock, memory, region string
}

func newDoctorCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	o := &doctorOptions{}
	c := &cobra.Command{
		Use:   "doctor",
		Short: "Print what this host offers the GPU path and what Stoker will use",
		Long: `Print what this host offers the GPU path (GPUs, NUMA, mlock limit, huge
pages, cuFile, the shared-memory folder and socket) and which path each
stage will take; with --server, what that server found too.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runDoctor(c.Context(), o, c.OutOrStdout())
		},
	}
	fs := c.Flags()
	o.dial = addDialFlags(fs, "", lookupEnv)
	fs.Lookup("server").Usage = "also ask this stokerd (host:port or unix:///path) what it found"
	fs.StringVar(&o.sock, "unix", "", "the unix socket stokerd serves (stokerd --unix), checked for shared-memory delivery")
	fs.StringVar(&o.memory, "memory-cache", "1GiB", "memory tier size to check against the mlock limit")
	fs.StringVar(&o.region, "memory-region", string(gpu.RegionAuto), "the stokerd --memory-region to plan for: auto, locked or heap")
	o.dial.completeFiles(c)
	_ = c.RegisterFlagCompletionFunc("memory-region", fixedCompletions("auto", "locked", "heap"))
	return c
}

// runDoctor prints what this host offers the GPU path and what Stoker
// will use of it; with --server it also shows what that server found.
func runDoctor(ctx context.Context, o *doctorOptions, out io.Writer) error {
	mem, err := humanize.ParseBytes(o.memory)
	if err != nil {
		return fmt.Errorf("doctor: --memory-cache %q: %w", o.memory, err)
	}
	mode, err := gpu.ParseMemoryRegion(o.region)
	if err != nil {
		return fmt.Errorf("doctor: --memory-region: %w", err)
	}
	h, perr := gpu.Probe()
	fmt.Fprintln(out, "this host:")
	printHost(out, h)
	if perr != nil {
		fmt.Fprintf(out, "  nvml error:    %v\n", perr)
	}
	sockOK := false
	if o.sock != "" {
		st, err := os.Stat(strings.TrimPrefix(o.sock, "unix://"))
		sockOK = err == nil && st.Mode()&os.ModeSocket != 0
		fmt.Fprintf(out, "  unix socket:   %s (%s)\n", o.sock, map[bool]string{true: "present", false: "missing or not a socket"}[sockOK])
	}
	fmt.Fprintln(out, "stoker will use:")
	for _, l := range plan(h, mem, mode, o.sock != "", sockOK) {
		fmt.Fprintln(out, "  "+l)
	}
	if o.dial.addr != "" {
		c, err := o.dial.dial()
		if err != nil {
			return err
		}
		defer c.Close()
		st, err := c.Stats(ctx)
		if err != nil {
			return fmt.Errorf("doctor: stats of %s: %w", o.dial.addr, err)
		}
		fmt.Fprintf(out, "server %s:\n", o.dial.addr)
		printHost(out, hostOf(st.GetHost()))
		printRegion(out, st.GetHost().GetMemoryRegion())
		fmt.Fprintf(out, "  client path:   %s\n", clientPath(o.dial.addr, st, os.Getenv))
		fmt.Fprintf(out, "  shm:           %d regions (%s), %d leases (%s), %s delivered\n", st.GetShmRegions(),
			humanize.IBytes(st.GetShmRegionBytes()), st.GetShmLeases(), humanize.IBytes(st.GetShmLeasedBytes()), humanize.IBytes(st.GetShmBytesServed()))
	}
	return nil
}

// printHost prints a host's facts: this host's probe, or a server's as
// hostOf reads them back from its Stats.
func printHost(out io.Writer, h gpu.Host) {
	if !h.GPUs.NVML {
		fmt.Fprintf(out, "  gpus:          none (no NVML: %s)\n", h.GPUs.Reason)
	} else {
		fmt.Fprintf(out, "  gpus:          %d (driver %s)\n", len(h.GPUs.Devices), h.GPUs.DriverVersion)
		for _, g := range h.GPUs.Devices {
			fmt.Fprintf(out, "    %d: %s %s, %s, bus %s, numa node %d\n", g.Index, g.Name, g.UUID,
				humanize.IBytes(g.MemoryBytes), g.BusID, g.NUMANode)
		}
	}
	fmt.Fprintf(out, "  numa nodes:    %v\n", h.NUMANodes)
	ipc := ""
	if h.IPCLock {
		ipc = " (CAP_IPC_LOCK held: no limit applies)"
	}
	fmt.Fprintf(out, "  mlock limit:   %s%s\n", memlock(h.MemlockBytes), ipc)
	if h.HugePageBytes == 0 {
		fmt.Fprintln(out, "  huge pages:    none")
	} else {
		fmt.Fprintf(out, "  huge pages:    %d free of %s\n", h.HugePagesFree, humanize.IBytes(h.HugePageBytes))
	}
	if h.CuFile {
		fmt.Fprintln(out, "  cufile:        found, driver open")
	} else {
		fmt.Fprintf(out, "  cufile:        not found (%s)\n", h.CuFileReason)
	}
	fmt.Fprintf(out, "  shm folder:    %s\n", h.ShmDir)
}

// hostOf reads a server's host facts (its Stats) back into a probe's
// form, the inverse of what the server sends.
func hostOf(h *stokerv1.HostInfo) gpu.Host {
	out := gpu.Host{
		GPUs:         gpu.Discovery{NVML: h.GetNvml(), Reason: h.GetNvmlReason(), DriverVersion: h.GetDriverVersion()},
		MemlockBytes: h.GetMemlockBytes(), IPCLock: h.GetIpcLock(),
		HugePageBytes: h.GetHugePageBytes(), HugePagesFree: h.GetHugePagesFree(),
		CuFile: h.GetCufile(), CuFileReason: h.GetCufileReason(), ShmDir: h.GetShmDir(),
	}
	for _, n := range h.GetNumaNodes() {
		out.NUMANodes = append(out.NUMANodes, int(n))
	}
	for _, g := range h.GetGpus() {
		out.GPUs.Devices = append(out.GPUs.Devices, gpu.Device{Index: int(g.GetIndex()), Name: g.GetName(), UUID: g.GetUuid(),
			MemoryBytes: g.GetMemoryBytes(), BusID: g.GetPciBusId(), NUMANode: int(g.GetNumaNode())})
	}
	return out
}

func memlock(n uint64) string {
	if n == gpu.Unlimited {
		return "unlimited"
	}
	return humanize.IBytes(n)
}

// printRegion prints where a server keeps its memory tier.
func printRegion(out io.Writer, r *stokerv1.MemoryRegion) {
	if !r.GetRegion() {
		fmt.Fprintf(out, "  memory tier:   on the Go heap (%s)\n", r.GetReason())
		return
	}
	fmt.Fprintf(out, "  memory tier:   one mapped region of %s, huge pages %v\n", humanize.IBytes(r.GetBytes()), r.GetHugePages())
	fmt.Fprintf(out, "    locked:      %v (%s)\n", r.GetLocked(), r.GetLockReason())
	fmt.Fprintf(out, "    numa node:   %d (%s)\n", r.GetNumaNode(), r.GetNumaReason())
	if r.GetSharedPath() != "" {
		fmt.Fprintf(out, "    shared:      %s (shared-memory streams read the tier in place)\n", r.GetSharedPath())
	} else {
		fmt.Fprintf(out, "    shared:      no (%s)\n", r.GetShareReason())
	}
}

// plan says which path each stage takes on this host.
func plan(h gpu.Host, memory uint64, mode gpu.MemoryRegion, sockGiven, sockOK bool) []string {
	var out []string
	p := gpu.PlanRegion(h, mode, memory)
	switch {
	case !p.Region:
		out = append(out, "memory tier:   on the Go heap")
	case p.Lock:
		out = append(out, fmt.Sprintf("memory tier:   one mapped region of %s, locked: %s", humanize.IBytes(memory), p.LockWhy))
	default:
		out = append(out, fmt.Sprintf("memory tier:   one mapped region of %s, not locked: %s", humanize.IBytes(memory), p.LockWhy))
	}
	if p.Region {
		if h.HugePageBytes > 0 && h.HugePagesFree*h.HugePageBytes >= memory {
			out = append(out, "pages:         huge pages")
		} else {
			out = append(out, "pages:         normal pages, advised toward transparent huge pages")
		}
		if p.Node >= 0 {
			out = append(out, fmt.Sprintf("numa:          node %d: %s", p.Node, p.NodeWhy))
		} else {
			out = append(out, "numa:          "+p.NodeWhy)
		}
		if free, ok := shmFree(h.ShmDir); p.Share && ok && free < memory {
			out = append(out, fmt.Sprintf("tier sharing:  no: %s has %s free, under the tier's %s, so stokerd keeps the tier private (give the folder more room, e.g. docker run --shm-size)",
				h.ShmDir, humanize.IBytes(free), humanize.IBytes(memory)))
		} else if p.Share {
			out = append(out, "tier sharing:  a file in "+h.ShmDir+": shared-memory streams read the tier in place, no copy")
		} else {
			out = append(out, "tier sharing:  "+p.ShareWhy)
		}
	}
	switch {
	case sockOK:
		out = append(out, "local delivery: shared memory in "+h.ShmDir+" over the unix socket (stoker read --shm, Client(..., shm=True))")
	case sockGiven:
		out = append(out, "local delivery: gRPC: the unix socket is missing, so no shared memory")
	default:
		out = append(out, "local delivery: shared memory in "+h.ShmDir+" over stokerd's unix socket (by default <tmp>/stoker-<uid>/stokerd-<port>.sock), which clients on this host find; gRPC otherwise")
	}
	if h.CuFile {
		out = append(out, "disk → gpu:    GPUDirect Storage (cuFile)")
	} else {
		out = append(out, "disk → gpu:    pinned host memory, then a DMA copy (no cuFile)")
	}
	return out
}

// shmFree returns the bytes free for an unprivileged user in dir's file
// system.
func shmFree(dir string) (uint64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return st.Bavail * uint64(st.Bsize), true
}
