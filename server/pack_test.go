package server

import (
	"bytes"
	"encoding/binary"
	"testing"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// unpacked is one field as the table describes it.
type unpacked struct {
	key      string
	position uint64
	shard    uint32
	name     string
	kind     uint32
	data     []byte // packData: its bytes in sample_data
	off, n   uint64
	path     string
}

// unpack reads a packed message back (the layout in pack.go), failing the
// test on any inconsistency.
func unpack(t *testing.T, msg *stokerv1.StreamBatchesResponse) []unpacked {
	t.Helper()
	tb, le := msg.SampleTable, binary.LittleEndian
	h := make([]int, 8)
	for i := range h {
		h[i] = int(le.Uint32(tb[4*i:]))
	}
	if h[0] != packMagic {
		t.Fatalf("magic %#x", h[0])
	}
	n, m := h[1], h[2]
	if want := packHeader + packSample*n + packField*m + h[4] + h[5] + h[7]; want != len(tb) {
		t.Fatalf("table of %d bytes, header says %d", len(tb), want)
	}
	strs := func(b []byte, count int) []string {
		var out []string
		for range count {
			k := int(le.Uint32(b))
			out = append(out, string(b[4:4+k]))
			b = b[4+k:]
		}
		return out
	}
	at := packHeader + packSample*n + packField*m
	names := strs(tb[at:], h[3])
	keys := tb[at+h[4] : at+h[4]+h[5]]
	paths := strs(tb[at+h[4]+h[5]:], h[6])
	var out []unpacked
	for i := range n {
		s := tb[packHeader+packSample*i:]
		first, end := int(le.Uint32(s[12:])), m
		if i+1 < n {
			end = int(le.Uint32(tb[packHeader+packSample*(i+1)+12:]))
		}
		ko, kn := le.Uint32(s[16:]), le.Uint32(s[20:])
		for j := first; j < end; j++ {
			f := tb[packHeader+packSample*n+packField*j:]
			u := unpacked{key: string(keys[ko : ko+kn]), position: le.Uint64(s), shard: le.Uint32(s[8:]),
				name: names[le.Uint32(f)], kind: le.Uint32(f[4:]), off: le.Uint64(f[8:]), n: le.Uint64(f[16:])}
			switch u.kind {
			case packData:
				u.data = msg.SampleData[u.off : u.off+u.n]
			case packExtent:
				u.path = paths[le.Uint32(f[24:])]
			}
			out = append(out, u)
		}
	}
	return out
}

func TestPackSamplesRoundTrip(t *testing.T) {
	msg := &stokerv1.StreamBatchesResponse{Samples: []*stokerv1.Sample{
		{Key: "a", Position: 7, Shard: 2, Fields: []*stokerv1.Field{
			{Name: "jpg", Data: []byte("hello")},
			{Name: "cls", Data: []byte("3")},
			{Name: "empty"},
		}},
		{Key: "bé", Position: 9, Shard: 5, Fields: []*stokerv1.Field{
			{Name: "jpg", ShmOffset: 4096, ShmLength: 100},
			{Name: "cls", ShmTier: true, ShmOffset: 1 << 33, ShmLength: 1},
			{Name: "npy", Extent: &stokerv1.FileExtent{Path: "/cache/x.shard", Offset: 512, Length: 64}},
		}},
		{Key: "c", Position: 10, Shard: 5},
	}}
	if err := packSamples(msg); err != nil {
		t.Fatal(err)
	}
	if len(msg.Samples) != 0 || !bytes.Equal(msg.SampleData, []byte("hello3")) {
		t.Fatalf("samples %d left, data %q", len(msg.Samples), msg.SampleData)
	}
	got := unpack(t, msg)
	want := []unpacked{
		{key: "a", position: 7, shard: 2, name: "jpg", kind: packData, data: []byte("hello"), off: 0, n: 5},
		{key: "a", position: 7, shard: 2, name: "cls", kind: packData, data: []byte("3"), off: 5, n: 1},
		{key: "a", position: 7, shard: 2, name: "empty", kind: packData, data: []byte{}, off: 6, n: 0},
		{key: "bé", position: 9, shard: 5, name: "jpg", kind: packRegion, off: 4096, n: 100},
		{key: "bé", position: 9, shard: 5, name: "cls", kind: packTier, off: 1 << 33, n: 1},
		{key: "bé", position: 9, shard: 5, name: "npy", kind: packExtent, off: 512, n: 64, path: "/cache/x.shard"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d fields, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.key != w.key || g.position != w.position || g.shard != w.shard || g.name != w.name || g.kind != w.kind ||
			g.off != w.off || g.n != w.n || g.path != w.path || !bytes.Equal(g.data, w.data) {
			t.Errorf("field %d: got %+v, want %+v", i, g, w)
		}
	}
	// The third sample has no fields: its range is empty, at the end.
	last := msg.SampleTable[packHeader+2*packSample:]
	if first := binary.LittleEndian.Uint32(last[12:]); first != 6 {
		t.Fatalf("the field-less sample's first field is %d, want 6", first)
	}
}

func TestPackLeavesColumnarMessages(t *testing.T) {
	msg := &stokerv1.StreamBatchesResponse{ArrowIpc: []byte("ipc"), RowShards: []uint32{1}}
	if err := packSamples(msg); err != nil {
		t.Fatal(err)
	}
	if msg.SampleTable != nil || string(msg.ArrowIpc) != "ipc" {
		t.Fatalf("a columnar message was changed: %+v", msg)
	}
}
