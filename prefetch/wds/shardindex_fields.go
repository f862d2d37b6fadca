package wds

import "slices"

// FieldSamples returns the shard's distinct field names, sorted (as
// FieldNames), and for each how many samples have it. A field a sample
// holds twice counts once.
func (x *ShardIndex) FieldSamples() (names []string, samples []int) {
	names = slices.Clone(x.names)
	samples = make([]int, len(names))
	perShape := make([]int, max(len(x.shapeAt)-1, 0))
	for _, s := range x.shape {
		perShape[s]++
	}
	seen := make([]int, len(names)) // seen[id] == s+1: name id counted for shape s
	for s, n := range perShape {
		if n == 0 {
			continue
		}
		for _, id := range x.shapeIDs[x.shapeAt[s]:x.shapeAt[s+1]] {
			if seen[id] != s+1 {
				seen[id] = s + 1
				samples[id] += n
			}
		}
	}
	return names, samples
}
