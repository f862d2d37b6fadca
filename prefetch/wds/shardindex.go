package wds

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"unsafe"
)

// Limits of a ShardIndex. Index and IndexShard never produce more on their
// own except for absurd keys; NewShardIndex and UnmarshalShardIndex refuse
// more with an ErrUnsupported (or, for decoded bytes, ErrCorrupt) *Error.
const (
	// MaxKeyLen bounds a sample key and a field name in bytes.
	MaxKeyLen = 64 << 10
	// MaxFieldNames bounds the distinct field names of one shard.
	MaxFieldNames = math.MaxUint16
	// maxCount bounds samples, fields and key bytes of one shard: they are
	// counted with uint32 in memory.
	maxCount = math.MaxUint32
)

// ShardIndex is the compact, immutable index of one shard: for every
// sample its key and, per field, the field's name and byte range in the
// decompressed tar. It holds the same facts as a []Sample from Index in a
// struct of arrays (one string of all keys, a table of field names and of
// the field-name sequences samples use, offsets and sizes in flat slices),
// about a third of the memory. A ShardIndex is safe to share between
// goroutines; its methods never modify it.
//
// Samples are in archive order and their fields do not overlap: each field
// starts at or after the end of the one before it, in the sample and across
// samples, and all lie within [0, Size()).
type ShardIndex struct {
	size     int64    // bytes of the decompressed tar; every field ends at or before it
	keys     string   // every key, concatenated
	keyEnd   []uint32 // keyEnd[j]: end of key j in keys (key j starts at keyEnd[j-1], or 0)
	first    []uint32 // first[j]: index of sample j's first field in off/length; first[n] = fields
	shape    []uint32 // shape[j]: sample j's field-name sequence, an index into shapeAt
	shapeAt  []uint32 // shapeAt[s]: start of sequence s in shapeIDs; shapeAt[len-1] = len(shapeIDs)
	shapeIDs []uint16 // field-name ids (into names) of every sequence, concatenated
	names    []string // distinct field names, sorted
	off      []int64  // off[k]: offset of field k's data
	length   []int64  // length[k]: size of field k
	mem      int64    // MemBytes, computed once
}

// Len returns the number of samples.
func (x *ShardIndex) Len() int { return len(x.keyEnd) }

// Size returns the length of the decompressed tar the index describes
// (IndexShard: every byte the reader gave; NewShardIndex: the end of the
// last field). Slicing fields out of a buffer is safe when the buffer holds
// at least Size bytes.
func (x *ShardIndex) Size() int64 { return x.size }

// Key returns sample j's key. It panics if j is out of range, as slices do.
func (x *ShardIndex) Key(j int) string {
	start := uint32(0)
	if j > 0 {
		start = x.keyEnd[j-1]
	}
	return x.keys[start:x.keyEnd[j]]
}

// NumFields returns the number of fields of sample j.
func (x *ShardIndex) NumFields(j int) int { return int(x.first[j+1] - x.first[j]) }

// Field returns field f of sample j (0 <= f < NumFields(j)), in archive
// order: its name and where its bytes lie in the decompressed tar.
func (x *ShardIndex) Field(j, f int) Field {
	if f < 0 || f >= x.NumFields(j) {
		panic(fmt.Sprintf("wds: field %d of sample %d, which has %d", f, j, x.NumFields(j)))
	}
	k := int(x.first[j]) + f
	id := x.shapeIDs[int(x.shapeAt[x.shape[j]])+f]
	return Field{Name: x.names[id], Offset: x.off[k], Size: x.length[k]}
}

// Span returns the byte range [off, end) of the decompressed tar that holds
// sample j's field data: from the start of its first field's data to the
// end of its last field's. Between fields it holds tar headers and padding
// only, never another sample's data.
func (x *ShardIndex) Span(j int) (off, end int64) {
	a, b := x.first[j], x.first[j+1]-1
	return x.off[a], x.off[b] + x.length[b]
}

// FieldNames returns the distinct field names of the shard, sorted. The
// slice is a copy.
func (x *ShardIndex) FieldNames() []string { return slices.Clone(x.names) }

// MemBytes returns the memory the index holds, in bytes, for a cache
// bounded by bytes.
func (x *ShardIndex) MemBytes() int64 { return x.mem }

// Sample returns sample j as a Sample, for callers of the []Sample form.
func (x *ShardIndex) Sample(j int) Sample {
	s := Sample{Key: x.Key(j), Fields: make([]Field, x.NumFields(j))}
	for f := range s.Fields {
		s.Fields[f] = x.Field(j, f)
	}
	return s
}

// Samples returns the whole index as Index returns it.
func (x *ShardIndex) Samples() []Sample {
	out := make([]Sample, x.Len())
	for j := range out {
		out[j] = x.Sample(j)
	}
	return out
}

// IndexShard is Index returning a ShardIndex. It reads r to its end (the
// bytes after the end-of-archive marker too, so Size is the whole
// decompressed length); errors are Index's.
func IndexShard(r io.Reader) (*ShardIndex, error) {
	cr := &countReader{r: r}
	samples, err := Index(cr)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		var e *Error
		if errors.As(err, &e) {
			return nil, err
		}
		return nil, fmt.Errorf("wds: reading shard at offset %d: %w", cr.n, err)
	}
	return newShardIndex(samples, cr.n)
}

// NewShardIndex makes the compact form of samples, an index as Index
// returns it. Its Size is the end of the last field. Samples that Index
// could not have produced are an ErrCorrupt *Error: an empty key or a
// sample without fields, a key equal to the one before, a field name twice
// in a sample, negative offsets or sizes, or fields out of archive order or
// overlapping. Keys or names over MaxKeyLen, or more than MaxFieldNames
// names, are ErrUnsupported.
func NewShardIndex(samples []Sample) (*ShardIndex, error) {
	var size int64
	if n := len(samples); n > 0 && len(samples[n-1].Fields) > 0 {
		f := samples[n-1].Fields[len(samples[n-1].Fields)-1]
		size = addSat(max(f.Offset, 0), max(f.Size, 0))
	}
	return newShardIndex(samples, size)
}

// newShardIndex checks samples and builds their index over a tar of size
// bytes.
func newShardIndex(samples []Sample, size int64) (*ShardIndex, error) {
	var b builder
	b.init(size, len(samples))
	nameIDs := make(map[string]uint16)
	for _, s := range samples {
		for _, f := range s.Fields {
			if _, ok := nameIDs[f.Name]; !ok {
				if len(nameIDs) >= MaxFieldNames {
					return nil, &Error{Kind: ErrUnsupported, Offset: f.Offset, Err: fmt.Errorf("more than %d distinct field names", MaxFieldNames)}
				}
				if len(f.Name) > MaxKeyLen {
					return nil, &Error{Kind: ErrUnsupported, Offset: f.Offset, Err: fmt.Errorf("field name of %d bytes, over the limit of %d", len(f.Name), MaxKeyLen)}
				}
				nameIDs[f.Name] = 0
			}
		}
	}
	b.x.names = make([]string, 0, len(nameIDs))
	for name := range nameIDs {
		b.x.names = append(b.x.names, name)
	}
	slices.Sort(b.x.names)
	for i, name := range b.x.names {
		nameIDs[name] = uint16(i)
	}
	shapeOf := make(map[string]uint32) // a sequence of name ids, as bytes -> its shape
	var keys strings.Builder
	var ids []uint16
	var sig []byte
	for j, s := range samples {
		ids, sig = ids[:0], sig[:0]
		for _, f := range s.Fields {
			id := nameIDs[f.Name]
			ids = append(ids, id)
			sig = append(sig, byte(id), byte(id>>8))
		}
		shape, ok := shapeOf[string(sig)]
		if !ok {
			var err error
			if shape, err = b.addShape(ids); err != nil {
				return nil, fmt.Errorf("sample %q: %w", s.Key, err)
			}
			shapeOf[string(sig)] = shape
		}
		if err := b.sample(j, s.Key, shape); err != nil {
			return nil, err
		}
		keys.WriteString(s.Key)
		for _, f := range s.Fields {
			if err := b.field(f.Name, f.Offset, f.Size); err != nil {
				return nil, err
			}
		}
	}
	return b.finish(keys.String()), nil
}

// builder assembles a ShardIndex, checking what makes a valid one:
// NewShardIndex and UnmarshalShardIndex share it. Set x.names first.
type builder struct {
	x       ShardIndex
	prevKey string
	keyLen  uint64 // key bytes so far
	prevEnd int64  // end of the last field added
}

func (b *builder) init(size int64, n int) {
	b.x.size = size
	b.x.keyEnd = make([]uint32, 0, n)
	b.x.first = make([]uint32, 0, n+1)
	b.x.shape = make([]uint32, 0, n)
}

// addShape adds a sequence of field-name ids that samples may have and
// returns its number. ids must be valid indexes of x.names.
func (b *builder) addShape(ids []uint16) (uint32, error) {
	if len(ids) == 0 {
		return 0, corrupt("", 0, "a sample with no fields")
	}
	if !distinct(ids) {
		return 0, corrupt("", 0, "a field name twice in one sample")
	}
	if len(b.x.shapeIDs)+len(ids) >= maxCount {
		return 0, &Error{Kind: ErrUnsupported, Err: errors.New("too many field-name sequences")}
	}
	if len(b.x.shapeAt) == 0 {
		b.x.shapeAt = []uint32{0}
	}
	b.x.shapeIDs = append(b.x.shapeIDs, ids...)
	b.x.shapeAt = append(b.x.shapeAt, uint32(len(b.x.shapeIDs)))
	return uint32(len(b.x.shapeAt) - 2), nil
}

// distinct reports whether ids holds no value twice.
func distinct(ids []uint16) bool {
	if len(ids) <= 16 {
		for i, id := range ids {
			if slices.Contains(ids[:i], id) {
				return false
			}
		}
		return true
	}
	s := slices.Clone(ids)
	slices.Sort(s)
	return len(slices.Compact(s)) == len(ids)
}

// sample starts sample j with key, its fields named by shape.
func (b *builder) sample(j int, key string, shape uint32) error {
	switch {
	case key == "":
		return corrupt("", b.prevEnd, "sample %d has an empty key", j)
	case len(key) > MaxKeyLen:
		return &Error{Kind: ErrUnsupported, Offset: b.prevEnd, Err: fmt.Errorf("sample %d: key of %d bytes, over the limit of %d", j, len(key), MaxKeyLen)}
	case j > 0 && key == b.prevKey:
		return corrupt("", b.prevEnd, "sample %d has the key %q of the sample before it", j, key)
	case int(shape)+1 >= len(b.x.shapeAt):
		return corrupt("", b.prevEnd, "sample %q has field-name sequence %d of %d", key, shape, len(b.x.shapeAt)-1)
	}
	b.keyLen += uint64(len(key))
	if b.keyLen > maxCount || j >= maxCount {
		return &Error{Kind: ErrUnsupported, Offset: b.prevEnd, Err: errors.New("more than 4 GiB of keys or 4G samples in one shard")}
	}
	b.x.keyEnd = append(b.x.keyEnd, uint32(b.keyLen))
	b.x.first = append(b.x.first, uint32(len(b.x.off)))
	b.x.shape = append(b.x.shape, shape)
	b.prevKey = key
	return nil
}

// field adds the next field of the current sample.
func (b *builder) field(name string, off, size int64) error {
	key := b.prevKey
	switch {
	case off < 0 || size < 0:
		return corrupt("", max(off, 0), "sample %q field %q: negative offset %d or size %d", key, name, off, size)
	case off < b.prevEnd:
		return corrupt("", off, "sample %q field %q at %d overlaps or precedes the field before it, which ends at %d", key, name, off, b.prevEnd)
	case off > b.x.size || size > b.x.size-off:
		return corrupt("", off, "sample %q field %q: bytes [%d, %d+%d) are not within the %d-byte tar", key, name, off, off, size, b.x.size)
	case len(b.x.off) >= maxCount:
		return &Error{Kind: ErrUnsupported, Offset: off, Err: errors.New("more than 4G fields in one shard")}
	}
	b.x.off = append(b.x.off, off)
	b.x.length = append(b.x.length, size)
	b.prevEnd = off + size
	return nil
}

// finish completes the index; keys is every key, concatenated.
func (b *builder) finish(keys string) *ShardIndex {
	x := &b.x
	x.keys = keys
	if len(x.shapeAt) == 0 {
		x.shapeAt = []uint32{0}
	}
	x.first = append(x.first, uint32(len(x.off)))
	x.keyEnd = slices.Clip(x.keyEnd)
	x.first = slices.Clip(x.first)
	x.shape = slices.Clip(x.shape)
	x.off = slices.Clip(x.off)
	x.length = slices.Clip(x.length)
	x.mem = int64(unsafe.Sizeof(*x)) + int64(len(x.keys)) +
		4*int64(cap(x.keyEnd)+cap(x.first)+cap(x.shape)+cap(x.shapeAt)) + 2*int64(cap(x.shapeIDs)) +
		8*int64(cap(x.off)+cap(x.length))
	for _, n := range x.names {
		x.mem += int64(unsafe.Sizeof(n)) + int64(len(n))
	}
	return x
}

// Equal reports whether x and y describe the same samples over the same
// tar size.
func (x *ShardIndex) Equal(y *ShardIndex) bool {
	if x.size != y.size || x.Len() != y.Len() || x.keys != y.keys || !slices.Equal(x.keyEnd, y.keyEnd) ||
		!slices.Equal(x.first, y.first) || !slices.Equal(x.off, y.off) || !slices.Equal(x.length, y.length) {
		return false
	}
	for j := range x.Len() {
		for f := range x.NumFields(j) {
			if x.Field(j, f).Name != y.Field(j, f).Name {
				return false
			}
		}
	}
	return true
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n < 0 || n > len(p) {
		return 0, fmt.Errorf("wds: reader returned %d bytes for a %d-byte buffer", n, len(p))
	}
	c.n += int64(n)
	return n, err
}
