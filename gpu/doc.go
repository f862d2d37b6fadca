// Package gpu is what Stoker knows about the GPU host it runs on: the
// NVIDIA GPUs NVML reports (name, UUID, memory, PCI bus id, NUMA node),
// the host's facts that decide the delivery path (NUMA nodes, the mlock
// limit, huge pages, cuFile), pinned host memory regions, and cuFile reads.
//
// Every GPU library is found at run time (dlopen), never linked: the same
// binary runs on a host with no GPU, where discovery answers "no NVML"
// as a normal result rather than an error. cgo lives only in files behind
// a `//go:build cgo` / `//go:build !cgo` pair, so CGO_ENABLED=0 builds a
// binary that simply reports no GPU and no cuFile.
//
// It also plans the memory tier's region from those facts (PlanRegion),
// which stokerd follows and stoker doctor prints. It imports nothing of
// Stoker: never the server, prefetch, the clients or the wire format.
package gpu
