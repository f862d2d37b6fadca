package gpu

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MemoryNode chooses the NUMA node for the memory tier that serves the
// GPUs in d (filter d.Devices first to serve fewer), given the host's
// nodes (Host.NUMANodes, any order). It is the GPUs' node when they share
// one; when they span several, the node with the most of them, the lowest
// id on a tie. It is -1 when there is no choice to make: a host with one
// node or no NUMA information, no GPUs, or GPUs that report no node among
// the host's. why says which, for the log.
func MemoryNode(d Discovery, hostNodes []int) (node int, why string) {
	host := slices.Clone(hostNodes)
	slices.Sort(host)
	host = slices.Compact(host)
	switch {
	case len(host) == 0:
		return -1, "no placement: the host has no NUMA information"
	case len(host) == 1:
		return -1, fmt.Sprintf("no placement: the host has one NUMA node (%d)", host[0])
	case len(d.Devices) == 0:
		return -1, "no placement: no GPUs to serve (" + d.String() + ")"
	}
	gpus := map[int][]int{} // node -> indexes of its GPUs
	var unknown, foreign []int
	for _, g := range d.Devices {
		switch {
		case g.NUMANode < 0:
			unknown = append(unknown, g.Index)
		case !slices.Contains(host, g.NUMANode):
			foreign = append(foreign, g.Index)
		default:
			gpus[g.NUMANode] = append(gpus[g.NUMANode], g.Index)
		}
	}
	var notes []string
	if len(unknown) > 0 {
		notes = append(notes, "no NUMA node for "+gpuList(unknown))
	}
	if len(foreign) > 0 {
		notes = append(notes, gpuList(foreign)+" on a node the host does not list")
	}
	note := ""
	if len(notes) > 0 {
		note = " (" + strings.Join(notes, "; ") + ")"
	}
	if len(gpus) == 0 {
		return -1, "no placement: no GPU has a known NUMA node" + note
	}
	nodes := make([]int, 0, len(gpus))
	for n := range gpus {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	if len(nodes) == 1 {
		n := nodes[0]
		return n, fmt.Sprintf("node %d: the GPUs' node (%s; host nodes %s)", n, gpuList(gpus[n]), joinInts(host)) + note
	}
	best := nodes[0]
	tie := false
	for _, n := range nodes[1:] {
		switch c, b := len(gpus[n]), len(gpus[best]); {
		case c > b:
			best, tie = n, false
		case c == b:
			tie = true
		}
	}
	parts := make([]string, len(nodes))
	for i, n := range nodes {
		parts[i] = fmt.Sprintf("node %d has %s", n, gpuList(gpus[n]))
	}
	rule := "the most"
	if tie {
		rule = "the most, lowest id on a tie"
	}
	return best, fmt.Sprintf("node %d: the GPUs span nodes (%s); chose %s", best, strings.Join(parts, ", "), rule) + note
}

// gpuList is "GPU 2" or "GPUs 0,1".
func gpuList(idx []int) string {
	if len(idx) == 1 {
		return "GPU " + strconv.Itoa(idx[0])
	}
	return "GPUs " + joinInts(idx)
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}
