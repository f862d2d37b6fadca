package wds

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"unsafe"
)

// The binary form of a ShardIndex (MarshalBinary):
//
//	"WDSI" version(1 byte, 1)
//	uvarint size                      the decompressed tar's length
//	uvarint names, then each: uvarint length, bytes      sorted, distinct
//	uvarint shapes, then each: uvarint fields, then each: uvarint name id
//	uvarint samples, then each:
//	    uvarint shape
//	    uvarint shared, uvarint suffix length, suffix    key = previous key[:shared] + suffix
//	    per field: varint offset - predicted, uvarint size
//	crc32c (Castagnoli) of everything before it, 4 bytes little-endian
//
// A field's predicted offset is where a tar puts the data of a member that
// follows the previous field with one header block: the previous field's
// end rounded up to 512, plus 512 (512 for the first field). Most fields
// are exactly there, so the offset costs one byte, and a shard whose
// samples all have the same fields in the same order (one shape) costs
// about 2 bytes per field plus its key's changed suffix per sample.
const (
	codecMagic   = "WDSI"
	codecVersion = 1
	// keyRatio bounds the key bytes an encoding may expand to, as a
	// multiple of its length: keys shared with the previous key cost
	// little to store, and without a bound a few bytes could decode to
	// gigabytes. MarshalBinary stores keys whole when sharing would pass it.
	keyRatio = 16
	// minSampleBytes is the least one encoded sample takes: shape, shared,
	// suffix length, and one field's offset and size.
	minSampleBytes = 5
)

// castagnoli is the CRC-32C table.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary returns the compact binary form of x, which
// UnmarshalShardIndex reads back. A shard of S samples whose fields come in
// one order costs about 2 bytes per field, 3 per sample and the bytes by
// which each key differs from the one before.
func (x *ShardIndex) MarshalBinary() ([]byte, error) {
	out := x.encode(true)
	if uint64(len(x.keys)) > keyRatio*uint64(len(out)) {
		out = x.encode(false)
	}
	return out, nil
}

// encode writes x; share says whether keys are stored as the bytes they
// add to the previous key's shared prefix.
func (x *ShardIndex) encode(share bool) []byte {
	out := make([]byte, 0, 64+len(x.keys)/2+4*len(x.off)+3*len(x.keyEnd))
	out = append(out, codecMagic...)
	out = append(out, codecVersion)
	out = binary.AppendUvarint(out, uint64(x.size))
	out = binary.AppendUvarint(out, uint64(len(x.names)))
	for _, n := range x.names {
		out = binary.AppendUvarint(out, uint64(len(n)))
		out = append(out, n...)
	}
	shapes := len(x.shapeAt) - 1
	out = binary.AppendUvarint(out, uint64(shapes))
	for s := range shapes {
		ids := x.shapeIDs[x.shapeAt[s]:x.shapeAt[s+1]]
		out = binary.AppendUvarint(out, uint64(len(ids)))
		for _, id := range ids {
			out = binary.AppendUvarint(out, uint64(id))
		}
	}
	out = binary.AppendUvarint(out, uint64(x.Len()))
	prev, prevEnd := "", int64(0)
	for j := range x.Len() {
		out = binary.AppendUvarint(out, uint64(x.shape[j]))
		key := x.Key(j)
		shared := 0
		if share {
			for shared < min(len(key), len(prev)) && key[shared] == prev[shared] {
				shared++
			}
		}
		out = binary.AppendUvarint(out, uint64(shared))
		out = binary.AppendUvarint(out, uint64(len(key)-shared))
		out = append(out, key[shared:]...)
		prev = key
		for k := x.first[j]; k < x.first[j+1]; k++ {
			out = binary.AppendVarint(out, x.off[k]-predict(prevEnd))
			out = binary.AppendUvarint(out, uint64(x.length[k]))
			prevEnd = x.off[k] + x.length[k]
		}
	}
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

// predict is where the data of a member that follows a field ending at end
// with one header block starts.
func predict(end int64) int64 { return addSat(alignUp(end), blockSize) }

// UnmarshalShardIndex reads an index written by MarshalBinary. The bytes
// are untrusted: a wrong magic, version or checksum, counts the bytes
// cannot hold, fields out of order, overlapping or outside the declared
// tar size, or keys that would expand past 16 times the input are an
// ErrCorrupt *Error (whose Offset is the position in b), and nothing is
// allocated beyond a small multiple of len(b).
func UnmarshalShardIndex(b []byte) (*ShardIndex, error) {
	const head = len(codecMagic) + 1
	if len(b) < head+4 {
		return nil, corrupt("", 0, "shard index: %d bytes, too short", len(b))
	}
	if string(b[:len(codecMagic)]) != codecMagic {
		return nil, corrupt("", 0, "shard index: bad magic %q", b[:len(codecMagic)])
	}
	if v := b[len(codecMagic)]; v != codecVersion {
		return nil, corrupt("", int64(len(codecMagic)), "shard index: version %d, want %d", v, codecVersion)
	}
	body := b[:len(b)-4]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(b[len(b)-4:]); got != want {
		return nil, corrupt("", int64(len(body)), "shard index: checksum %08x, want %08x", got, want)
	}
	d := decoder{b: body, pos: head}
	x, err := d.index()
	if err != nil {
		return nil, err
	}
	if d.pos != len(body) {
		return nil, corrupt("", int64(d.pos), "shard index: %d bytes after the last sample", len(body)-d.pos)
	}
	return x, nil
}

// decoder reads the body of an encoded ShardIndex.
type decoder struct {
	b   []byte
	pos int
}

func (d *decoder) index() (*ShardIndex, error) {
	size, err := d.count("tar size", math.MaxInt64)
	if err != nil {
		return nil, err
	}
	var bld builder
	nNames, err := d.count("field names", uint64(min(MaxFieldNames, d.left())))
	if err != nil {
		return nil, err
	}
	names := make([]string, nNames)
	for i := range names {
		n, err := d.count("field name length", uint64(min(MaxKeyLen, d.left())))
		if err != nil {
			return nil, err
		}
		names[i] = string(d.b[d.pos : d.pos+int(n)])
		if i > 0 && names[i] <= names[i-1] {
			return nil, corrupt("", int64(d.pos), "shard index: field names not sorted: %q after %q", names[i], names[i-1])
		}
		d.pos += int(n)
	}
	nShapes, err := d.count("field-name sequences", uint64(d.left()/2))
	if err != nil {
		return nil, err
	}
	bld.x.names = names
	used := make([]bool, len(names))
	ids := make([]uint16, 0, len(names))
	for range nShapes {
		k, err := d.count("fields of a sequence", uint64(min(len(names), d.left())))
		if err != nil {
			return nil, err
		}
		ids = ids[:0]
		for range k {
			id, err := d.count("field name id", uint64(max(len(names)-1, 0)))
			if err != nil {
				return nil, err
			}
			ids = append(ids, uint16(id))
			used[id] = true
		}
		if _, err := bld.addShape(ids); err != nil {
			return nil, d.at(err)
		}
	}
	for i, u := range used {
		if !u {
			return nil, corrupt("", int64(d.pos), "shard index: field name %q is in no sample", names[i])
		}
	}
	n, err := d.count("samples", uint64(d.left()/minSampleBytes))
	if err != nil {
		return nil, err
	}
	bld.init(int64(size), int(n))
	widest := 0
	for s := range nShapes {
		widest = max(widest, int(bld.x.shapeAt[s+1]-bld.x.shapeAt[s]))
	}
	// Every field takes at least two bytes: this bounds the guess.
	fields := min(int(n)*widest, d.left()/2)
	bld.x.off, bld.x.length = make([]int64, 0, fields), make([]int64, 0, fields)
	shapeUsed := make([]bool, nShapes)
	maxKeys := keyRatio * uint64(len(d.b)+4)
	var keys []byte
	prev := 0 // start of the previous key in keys
	prevEnd := int64(0)
	for j := range int(n) {
		shape, err := d.count("sample's field-name sequence", nShapes)
		if err != nil {
			return nil, err
		}
		shared, err := d.count("key's shared prefix", uint64(len(keys)-prev))
		if err != nil {
			return nil, err
		}
		suffix, err := d.count("key's suffix", uint64(min(MaxKeyLen, d.left())))
		if err != nil {
			return nil, err
		}
		if uint64(len(keys))+shared+suffix > maxKeys {
			return nil, corrupt("", int64(d.pos), "shard index: keys expand past %d bytes, %d times the index", maxKeys, keyRatio)
		}
		start := len(keys)
		keys = append(keys, keys[prev:prev+int(shared)]...)
		keys = append(keys, d.b[d.pos:d.pos+int(suffix)]...)
		d.pos += int(suffix)
		// The bytes of a key are never written again (appending copies or
		// writes past them), so a string may share them.
		key := unsafe.String(unsafe.SliceData(keys[start:]), len(keys)-start)
		if err := bld.sample(j, key, uint32(shape)); err != nil {
			return nil, d.at(err)
		}
		shapeUsed[shape] = true
		prev = start
		for f := bld.x.shapeAt[shape]; f < bld.x.shapeAt[shape+1]; f++ {
			delta, err := d.varint("field offset")
			if err != nil {
				return nil, err
			}
			pred := predict(prevEnd)
			if delta > 0 && pred > math.MaxInt64-delta {
				return nil, corrupt("", int64(d.pos), "shard index: field offset overflows")
			}
			length, err := d.count("field size", math.MaxInt64)
			if err != nil {
				return nil, err
			}
			if err := bld.field(names[bld.x.shapeIDs[f]], pred+delta, int64(length)); err != nil {
				return nil, d.at(err)
			}
			prevEnd = pred + delta + int64(length)
		}
	}
	for s, u := range shapeUsed {
		if !u {
			return nil, corrupt("", int64(d.pos), "shard index: field-name sequence %d is in no sample", s)
		}
	}
	return bld.finish(unsafe.String(unsafe.SliceData(keys), len(keys))), nil
}

// left is the number of bytes not yet read.
func (d *decoder) left() int { return len(d.b) - d.pos }

// count reads a uvarint that must be at most limit; for lengths, limit
// must not exceed the bytes left.
func (d *decoder) count(what string, limit uint64) (uint64, error) {
	v, n := binary.Uvarint(d.b[d.pos:])
	if n <= 0 {
		return 0, corrupt("", int64(d.pos), "shard index: %s: bad or truncated varint", what)
	}
	if v > limit {
		return 0, corrupt("", int64(d.pos), "shard index: %s %d, over the limit of %d here", what, v, limit)
	}
	d.pos += n
	return v, nil
}

// varint reads a signed varint.
func (d *decoder) varint(what string) (int64, error) {
	v, n := binary.Varint(d.b[d.pos:])
	if n <= 0 {
		return 0, corrupt("", int64(d.pos), "shard index: %s: bad or truncated varint", what)
	}
	d.pos += n
	return v, nil
}

// at says where in the encoding a builder's error was found.
func (d *decoder) at(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return &Error{Kind: ErrCorrupt, Offset: int64(d.pos), Err: fmt.Errorf("shard index: %w", e.Err)}
	}
	return corrupt("", int64(d.pos), "shard index: %v", err)
}
