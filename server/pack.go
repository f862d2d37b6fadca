package server

import (
	"encoding/binary"
	"fmt"
	"math"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// A packed stream (StreamBatchesRequest.packed) sends each message's
// samples as two byte strings instead of a Sample message per sample and
// a Field per field, so a client reads a batch with a few array views and
// keeps one buffer per message (Python: numpy over sample_table,
// memoryviews into sample_data) rather than a protobuf object per field.
//
// sample_table, little-endian:
//
//	header   8 × u32: magic packMagic, samples n, fields m, names, names bytes,
//	         keys bytes, paths, paths bytes
//	samples  n × 24 bytes: u64 position, u32 shard, u32 first field,
//	         u32 key offset, u32 key length (in the keys blob);
//	         sample i has fields [first_i, first_{i+1}) (the last: up to m)
//	fields   m × 32 bytes: u32 name, u32 kind, u64 offset, u64 length,
//	         u32 path, u32 zero
//	names    each: u32 length, then the bytes (field names, by index)
//	keys     the keys, one after another
//	paths    each: u32 length, then the bytes (extents' files, by index)
//
// A field's kind says where its bytes are: packData at offset in
// sample_data, packRegion in the stream's shm region, packTier in the
// shared memory tier, packExtent in file paths[path] (gds).
const (
	packMagic  = 0x314b5453 // "STK1"
	packHeader = 32
	packSample = 24
	packField  = 32

	packData   = 0
	packRegion = 1
	packTier   = 2
	packExtent = 3
)

// packedStream packs every message it sends (see above).
type packedStream struct {
	stokerv1.Loader_StreamBatchesServer
}

func (p packedStream) Send(msg *stokerv1.StreamBatchesResponse) error {
	if err := packSamples(msg); err != nil {
		return err
	}
	return p.Loader_StreamBatchesServer.Send(msg)
}

// packSamples moves msg's samples into SampleTable and SampleData. A
// message without samples (columnar) is left as it is.
func packSamples(msg *stokerv1.StreamBatchesResponse) error {
	if len(msg.Samples) == 0 {
		return nil
	}
	var (
		names     []string
		nameIndex = map[string]uint32{}
		paths     []string
		pathIndex = map[string]uint32{}
		fields    int
		keyBytes  int
		dataBytes int
	)
	index := func(s string, list *[]string, idx map[string]uint32) uint32 {
		if i, ok := idx[s]; ok {
			return i
		}
		i := uint32(len(*list))
		idx[s] = i
		*list = append(*list, s)
		return i
	}
	for _, s := range msg.Samples {
		fields += len(s.Fields)
		keyBytes += len(s.Key)
		for _, f := range s.Fields {
			index(f.Name, &names, nameIndex)
			if f.Extent != nil {
				index(f.Extent.Path, &paths, pathIndex)
			}
			dataBytes += len(f.Data)
		}
	}
	strBytes := func(list []string) int {
		n := 0
		for _, s := range list {
			n += 4 + len(s)
		}
		return n
	}
	nb, pb := strBytes(names), strBytes(paths)
	size := packHeader + packSample*len(msg.Samples) + packField*fields + nb + keyBytes + pb
	if size > math.MaxUint32 || keyBytes > math.MaxUint32 {
		return fmt.Errorf("pack: a message's table of %d bytes does not fit the packed format", size)
	}
	t := make([]byte, size)
	le := binary.LittleEndian
	for i, v := range []int{packMagic, len(msg.Samples), fields, len(names), nb, keyBytes, len(paths), pb} {
		le.PutUint32(t[4*i:], uint32(v))
	}
	data := make([]byte, 0, dataBytes)
	st, ft := t[packHeader:], t[packHeader+packSample*len(msg.Samples):]
	keys := ft[packField*fields+nb:]
	keyOff, field := 0, 0
	for i, s := range msg.Samples {
		e := st[packSample*i:]
		le.PutUint64(e, s.Position)
		le.PutUint32(e[8:], s.Shard)
		le.PutUint32(e[12:], uint32(field))
		le.PutUint32(e[16:], uint32(keyOff))
		le.PutUint32(e[20:], uint32(len(s.Key)))
		keyOff += copy(keys[keyOff:], s.Key)
		for _, f := range s.Fields {
			g := ft[packField*field:]
			field++
			le.PutUint32(g, nameIndex[f.Name])
			kind, off, n, path := uint32(packData), uint64(len(data)), uint64(len(f.Data)), uint32(0)
			switch {
			case f.Extent != nil:
				kind, off, n, path = packExtent, f.Extent.Offset, f.Extent.Length, pathIndex[f.Extent.Path]
			case f.ShmTier:
				kind, off, n = packTier, f.ShmOffset, f.ShmLength
			case f.ShmLength > 0:
				kind, off, n = packRegion, f.ShmOffset, f.ShmLength
			default:
				data = append(data, f.Data...)
			}
			le.PutUint32(g[4:], kind)
			le.PutUint64(g[8:], off)
			le.PutUint64(g[16:], n)
			le.PutUint32(g[24:], path)
		}
	}
	putStrings(t[packHeader+packSample*len(msg.Samples)+packField*fields:], names)
	putStrings(keys[keyBytes:], paths)
	msg.Samples, msg.SampleTable, msg.SampleData = nil, t, data
	return nil
}

// putStrings writes each string as a u32 length and its bytes.
func putStrings(b []byte, list []string) {
	for _, s := range list {
		binary.LittleEndian.PutUint32(b, uint32(len(s)))
		b = b[4+copy(b[4:], s):]
	}
}
