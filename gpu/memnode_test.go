package gpu

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// gpusOn is a discovery with one GPU per entry, on that NUMA node.
func gpusOn(nodes ...int) Discovery {
	d := Discovery{NVML: true, DriverVersion: "test"}
	for i, n := range nodes {
		d.Devices = append(d.Devices, Device{Index: i, Name: "fake", NUMANode: n})
	}
	return d
}

func TestMemoryNode(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    Discovery
		host []int
		want int
		why  string // a part of why
	}{
		{"no NUMA info", gpusOn(-1, -1), nil, -1, "no NUMA information"},
		{"one host node", gpusOn(0, 0), []int{0}, -1, "one NUMA node (0)"},
		{"one host node listed twice", gpusOn(0), []int{0, 0}, -1, "one NUMA node"},
		{"no NVML", Discovery{Reason: "libnvidia-ml.so.1 not found"}, []int{0, 1}, -1, "no GPUs to serve (no NVML: libnvidia-ml.so.1 not found)"},
		{"NVML but no GPUs", gpusOn(), []int{0, 1}, -1, "no GPUs to serve"},
		{"all GPUs on node 1", gpusOn(1, 1, 1, 1), []int{0, 1}, 1, "node 1: the GPUs' node (GPUs 0,1,2,3"},
		{"one GPU on node 0", gpusOn(0), []int{1, 0}, 0, "(GPU 0; host nodes 0,1)"},
		{"majority", gpusOn(0, 1, 1, 0, 1), []int{0, 1}, 1, "node 0 has GPUs 0,3, node 1 has GPUs 1,2,4); chose the most"},
		{"tie goes to the lowest id", gpusOn(1, 0, 1, 0), []int{0, 1}, 0, "lowest id on a tie"},
		{"tie beaten by a later node", gpusOn(0, 1, 2, 2), []int{0, 1, 2, 3}, 2, "chose the most"},
		{"no GPU knows its node", gpusOn(-1, -1), []int{0, 1}, -1, "no NUMA node for GPUs 0,1"},
		{"unknown GPUs are left out", gpusOn(-1, 1), []int{0, 1}, 1, "no NUMA node for GPU 0"},
		{"node the host does not list", gpusOn(7), []int{0, 1}, -1, "GPU 0 on a node the host does not list"},
		{"sparse node ids", gpusOn(2, 2, 0), []int{2, 0}, 2, "chose the most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node, why := MemoryNode(tc.d, tc.host)
			if node != tc.want || !strings.Contains(why, tc.why) {
				t.Fatalf("MemoryNode = %d, %q; want %d and a reason containing %q", node, why, tc.want, tc.why)
			}
			t.Log(why)
		})
	}
}

// TestMemoryNodeProperties checks random hosts: the node is -1 or one of
// the host's nodes holding the most GPUs and the lowest such id, and
// there is always a reason.
func TestMemoryNodeProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		host := r.Perm(1 + r.IntN(4)) // shuffled node ids, maybe none
		host = host[:r.IntN(len(host)+1)]
		nodes := make([]int, r.IntN(9))
		for i := range nodes {
			nodes[i] = r.IntN(6) - 1 // -1 (unknown) up to 4 (maybe not a host node)
		}
		node, why := MemoryNode(gpusOn(nodes...), host)
		if why == "" {
			t.Fatalf("host %v gpus %v: no reason", host, nodes)
		}
		count := map[int]int{}
		for _, n := range nodes {
			if slices.Contains(host, n) {
				count[n]++
			}
		}
		want := -1
		if len(host) > 1 {
			for n, c := range count {
				if want < 0 || c > count[want] || (c == count[want] && n < want) {
					want = n
				}
			}
		}
		if node != want {
			t.Fatalf("host %v gpus %v: node %d (%s), want %d", host, nodes, node, why, want)
		}
	}
}

func ExampleMemoryNode() {
	d := Discovery{NVML: true, Devices: []Device{
		{Index: 0, NUMANode: 1}, {Index: 1, NUMANode: 1}, {Index: 2, NUMANode: 0},
	}}
	fmt.Println(MemoryNode(d, []int{0, 1}))
	fmt.Println(MemoryNode(d, []int{0}))
	// Output:
	// 1 node 1: the GPUs span nodes (node 0 has GPU 2, node 1 has GPUs 0,1); chose the most
	// -1 no placement: the host has one NUMA node (0)
}
