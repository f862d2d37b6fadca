package cache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/stoker-data/stoker/prefetch/storage"
)

func TestCacheFileNames(t *testing.T) {
	keys := []storage.Key{
		{Object: "ab", ETag: "c"},
		{Object: "a", ETag: "bc"},
		{Object: "s3://b/x.tar", ETag: `"1"`},
		{Object: "s3://b/x.tar", ETag: `"2"`},
		{},
	}
	seen := map[string]storage.Key{}
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

// TestCacheFileLayout checks the layout of files around block boundaries:
// the data is aligned, follows the table, and the table has a checksum
// per block.
func TestCacheFileLayout(t *testing.T) {
	key := testKey(1)
	for _, block := range []int64{minBlock, defaultBlockSize} {
		for _, n := range []int64{0, 1, block - 1, block, block + 1, 3*block + 17, 2000 * block / 2} {
			data := testData(key, int(n))
			head := encodeHead(key, data, block)
			l := fileLayout(key, n, block)
			if int64(len(head)) != l.dataOff || l.dataOff%dataAlign != 0 {
				t.Fatalf("block %d, %d bytes: head of %d bytes, data at %d: not aligned", block, n, len(head), l.dataOff)
			}
			nb := (n + block - 1) / block
			if l.tableOff+nb*sumSize > l.dataOff || l.dataOff-(l.tableOff+nb*sumSize) >= dataAlign {
				t.Fatalf("block %d, %d bytes: %d checksums at %d do not end just before the data at %d", block, n, nb, l.tableOff, l.dataOff)
			}
			h, err := readHeader(bytes.NewReader(append(head, data...)), l.fileSize())
			if err != nil || h.key != key || h.layout != l {
				t.Fatalf("block %d, %d bytes: readHeader = %+v, %v; want %+v", block, n, h, err, l)
			}
		}
	}
}

// fuzzKey names the entry of the files FuzzCacheFile reads as the index's.
var fuzzKey = storage.Key{Object: "s3://bucket/train-000001.tar", ETag: `"abc"`}

// FuzzCacheFile feeds arbitrary bytes, as a whole entry file, to the
// readers of entry files, which read whatever a disk holds: the header
// decoder, the whole-entry reader, and a range read [off, off+n) both of
// the entry the header names and of the one an index would expect. None
// may panic; any damage must be errBadFile; what a reader accepts must be
// what the writer would have written (header, key and checksums) and the
// bytes the file holds at the data's place; and a file whose whole data
// verifies must verify in every range.
func FuzzCacheFile(f *testing.F) {
	for _, k := range []storage.Key{fuzzKey, {}} {
		for _, n := range []int{0, 1, 600, 3000} {
			data := testData(k, n)
			file := append(encodeHead(k, data, minBlock), data...)
			f.Add(file, uint32(0), uint32(n))
			f.Add(file, uint32(n/2), uint32(n/3))
			f.Add(file[:headerSize+len(k.Object)+len(k.ETag)-1], uint32(0), uint32(1)) // cut inside the key
		}
	}
	f.Add([]byte("STKC"), uint32(0), uint32(0))
	f.Add([]byte{}, uint32(0), uint32(0))
	f.Fuzz(func(t *testing.T, b []byte, off, n uint32) {
		r := bytes.NewReader(b)
		size := int64(len(b))
		wantBad := func(what string, err error) {
			if !errors.Is(err, errBadFile) {
				t.Fatalf("%s: %v is not errBadFile", what, err)
			}
		}
		// As an index would read it, for an entry of n bytes in blocks of
		// minBlock: the file must hold exactly those bytes where accepted.
		l := fileLayout(fuzzKey, int64(n%8192), minBlock)
		lo := int64(off) % (l.dataLen + 1)
		if got, err := readRange(r, fuzzKey, l, lo, l.dataLen-lo, make([]byte, l.span(lo, l.dataLen-lo).bufLen())); err != nil {
			wantBad("readRange of the expected entry", err)
		} else if int64(len(got)) != l.dataLen-lo || len(got) > 0 && !bytes.Equal(got, b[l.dataOff+lo:l.fileSize()]) {
			t.Fatalf("readRange of [%d, %d) accepted %x, not what the file holds there", lo, l.dataLen, got)
		}

		h, err := readHeader(r, size)
		if err != nil {
			wantBad("readHeader", err)
			return
		}
		keyEnd := h.tableOff
		if h.fileSize() != size || h.dataOff%dataAlign != 0 || h.dataOff < keyEnd+blockCount(h.dataLen, h.block)*sumSize {
			t.Fatalf("header %+v does not fit %d bytes, or its data is not aligned", h, size)
		}
		lo = int64(off) % (h.dataLen + 1)
		hi := lo + int64(n)%(h.dataLen-lo+1)
		part, partErr := readRange(r, h.key, h.layout, lo, hi-lo, make([]byte, h.span(lo, hi-lo).bufLen()))
		if partErr != nil {
			wantBad("readRange", partErr)
		} else if !bytes.Equal(part, b[h.dataOff+lo:h.dataOff+hi]) {
			t.Fatalf("readRange [%d, %d) = %x, the file holds %x", lo, hi, part, b[h.dataOff+lo:h.dataOff+hi])
		}
		data, err := readAll(r, h, func(n int64) []byte { return make([]byte, n) })
		if err != nil {
			wantBad("readAll", err)
			return
		}
		if partErr != nil {
			t.Fatalf("the whole data verifies, the range [%d, %d) does not: %v", lo, hi, partErr)
		}
		head := encodeHead(h.key, data, h.block)
		tableEnd := keyEnd + blockCount(h.dataLen, h.block)*sumSize
		if !bytes.Equal(head[:tableEnd], b[:tableEnd]) || !bytes.Equal(data, b[h.dataOff:]) {
			t.Fatalf("file %+v encodes to %x, read from %x", h, head[:tableEnd], b[:tableEnd])
		}
	})
}

// v2File is a file in format version 2, which had one checksum over all
// the data; this cache drops such files at open.
func v2File(key storage.Key, data []byte) []byte {
	b := make([]byte, headerSize)
	copy(b, fileMagic)
	binary.LittleEndian.PutUint32(b[4:], 2)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(key.Object)))
	binary.LittleEndian.PutUint32(b[12:], uint32(len(key.ETag)))
	binary.LittleEndian.PutUint64(b[16:], uint64(len(data)))
	binary.LittleEndian.PutUint32(b[24:], crc32c(data))
	b = append(b, key.Object...)
	b = append(b, key.ETag...)
	binary.LittleEndian.PutUint32(b[28:], crc32c(append(append([]byte(nil), b[:28]...), b[headerSize:]...)))
	for len(b)%dataAlign != 0 {
		b = append(b, 0)
	}
	return append(b, data...)
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }
