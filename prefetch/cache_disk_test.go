package prefetch

import (
	"bytes"
	"errors"
	"hash/crc32"
	"testing"
)

func TestCacheFileNames(t *testing.T) {
	keys := []CacheKey{
		{Object: "ab", ETag: "c"},
		{Object: "a", ETag: "bc"},
		{Object: "s3://b/x.tar", ETag: `"1"`},
		{Object: "s3://b/x.tar", ETag: `"2"`},
		{},
	}
	seen := map[string]CacheKey{}
	for _, k := range keys {
		name := fileName(k)
		if name != fileName(k) {
			t.Errorf("fileName(%+v) is not stable", k)
		}
		if other, dup := seen[name]; dup {
			t.Errorf("keys %+v and %+v share the file name %s", k, other, name)
		}
		seen[name] = k
	}
}

// FuzzCacheHeader feeds arbitrary bytes to the parser of entry file
// headers, which reads whatever a disk holds: it must never panic, must
// call any damage errBadFile, and what it accepts must encode back to the
// same bytes.
func FuzzCacheHeader(f *testing.F) {
	for _, k := range []CacheKey{{Object: "s3://bucket/train-000001.tar", ETag: `"abc"`}, {}} {
		data := []byte("some shard bytes")
		hdr := encodeHeader(k, int64(len(data)), crc32.Checksum(data, castagnoli))
		f.Add(append(hdr, data...))
		f.Add(hdr[:headerSize+len(k.Object)+len(k.ETag)-1]) // cut inside the key
	}
	f.Add([]byte("STKC"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHeader(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, errBadFile) {
				t.Fatalf("decodeHeader: %v is not errBadFile", err)
			}
			return
		}
		keyEnd := headerSize + len(h.key.Object) + len(h.key.ETag)
		if keyEnd > len(b) || h.dataLen < 0 || h.dataOff%dataAlign != 0 || h.dataOff < int64(keyEnd) {
			t.Fatalf("header %+v does not fit %d bytes, or its data is not aligned", h, len(b))
		}
		if again := encodeHeader(h.key, h.dataLen, h.dataCRC); !bytes.Equal(again[:keyEnd], b[:keyEnd]) {
			t.Fatalf("header %+v encodes to %x, read from %x", h, again[:keyEnd], b[:keyEnd])
		}
	})
}
