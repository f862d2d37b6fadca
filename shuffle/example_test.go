package shuffle_test

import (
	"fmt"
	"strings"

	"github.com/stoker-data/stoker/shuffle"
)

// A plan whose counts arrive window by window: positions are known as
// soon as a prefix of windows is counted.
func ExampleNewLazyPlan() {
	counts := []int{3, 1, 4, 1, 5, 9} // learnt from each shard's index, later
	p, err := shuffle.NewLazyPlan(len(counts), shuffle.Settings{Seed: 7, Epoch: 0, Window: 2})
	if err != nil {
		panic(err)
	}
	count := func(k int) {
		var cs []int
		for _, s := range p.WindowShards(k, nil) {
			cs = append(cs, counts[s])
		}
		if err := p.SetCounts(k, cs); err != nil {
			panic(err)
		}
	}
	count(1) // out of order: nothing is known yet
	n, complete := p.Total()
	fmt.Println("known", p.Known(), n, complete)
	count(0) // windows 0 and 1 are known now
	lo, hi, _ := p.WindowRange(1)
	fmt.Println("known", p.Known(), "window 1 at", lo, hi)
	count(2)
	n, complete = p.Total()
	fmt.Println("total", n, complete)
	var first []string
	for shard, pos := range p.FirstUses() {
		first = append(first, fmt.Sprintf("shard %d from %d", shard, pos))
	}
	fmt.Println(strings.Join(first, ", "))
	fmt.Println(p.Slice(0, 6))
	// Output:
	// known 0 0 false
	// known 13 window 1 at 7 13
	// total 23 true
	// shard 2 from 0, shard 0 from 2, shard 4 from 7, shard 1 from 11, shard 5 from 13, shard 3 from 15
	// [{2 2} {2 0} {0 0} {0 1} {2 3} {2 1}]
}
