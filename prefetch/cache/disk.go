package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"

	"github.com/stoker-data/stoker/prefetch/storage"
)

// The disk tier keeps one file per entry in Dir, named after a hash of the
// key with fileSuffix. A file is a header, the key, a table of checksums,
// zero padding, then the data, which starts at a multiple of 4 KiB so that
// a local reader can hand the file's extent to GPUDirect Storage (cuFile)
// with aligned offsets:
//
//	offset    size       field
//	0         4          magic "STKC"
//	4         4          format version (3)
//	8         4          length of the key's Object
//	12        4          length of the key's ETag
//	16        8          length of the data
//	24        4          block size B: a power of two from 512 B to 1 MiB
//	28        4          CRC-32C (Castagnoli) of bytes 0-27, the Object and the ETag
//	32        ...        Object, ETag
//	tableOff  4 a block  one checksum per block of B data bytes (the last
//	                     may be shorter): CRC-32C of the block's index as
//	                     8 bytes, then of the block's bytes
//	...       ...        zeros up to dataOff, a multiple of 4 KiB
//	dataOff   ...        data
//
// Integers are little-endian; tableOff is 32 plus the key's length. The key
// in the header maps a file back to its entry when a restarted cache scans
// Dir; the header's own checksum keeps a damaged key from naming another
// entry. The block checksums let a reader verify any byte range by reading
// only the blocks that cover it and their checksums (see readRange); the
// block's index in each checksum catches a block written or read at
// another block's place. The table is not covered by the header checksum:
// a damaged checksum fails its own block, and only reads of that block.
const (
	fileMagic   = "STKC"
	fileVersion = 3 // 1 had no padding, 2 one checksum over all the data: both are dropped at open
	headerSize  = 32
	sumSize     = 4       // bytes of one block checksum in the table
	dataAlign   = 4096    // data offset alignment (cuFile's and O_DIRECT's unit)
	maxKeyPart  = 1 << 16 // longest Object or ETag a header may name
	maxDataLen  = 1 << 50 // 1 PiB: keeps offsets, and the table, far within int64
	minBlock    = 512
	maxBlock    = 1 << 20
	fileSuffix  = ".shard"
	tmpSuffix   = ".tmp" // files being written; left over only by a crash
)

// defaultBlockSize is the block size of the files the cache writes. A
// range read reads its range rounded out to whole blocks, so a sample of
// n bytes costs about n+B bytes of reading and checksumming, while the
// table costs 4 bytes a block: at 16 KiB a random 64 KiB sample reads
// 1.25x its size on average (64 KiB blocks: 2x), and the table is 0.02%
// of the data, so an 8 MiB shard's 2 KiB table and header share the
// file's first page and one pread fetches both. BenchmarkDiskTierSample
// measures 4, 16 and 64 KiB.
const defaultBlockSize = 16 << 10

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errBadFile marks a disk entry whose header, length or checksum is wrong.
var errBadFile = errors.New("bad cache file")

// layout is where the parts of an entry's file lie.
type layout struct {
	dataLen  int64 // bytes of data
	block    int64 // block size
	tableOff int64 // where the block checksums start
	dataOff  int64 // where the data starts: a multiple of dataAlign
}

// fileLayout is the layout of key's file holding dataLen bytes in blocks
// of block bytes.
func fileLayout(key storage.Key, dataLen, block int64) layout {
	tableOff := int64(headerSize + len(key.Object) + len(key.ETag))
	end := tableOff + blockCount(dataLen, block)*sumSize
	return layout{dataLen: dataLen, block: block, tableOff: tableOff, dataOff: (end + dataAlign - 1) / dataAlign * dataAlign}
}

// blockCount is the number of blocks of n bytes of data.
func blockCount(n, block int64) int64 { return (n + block - 1) / block }

// fileSize is the length of a whole file.
func (l layout) fileSize() int64 { return l.dataOff + l.dataLen }

// blockSum is block i's checksum.
func blockSum(i int64, b []byte) uint32 {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(i))
	return crc32.Update(crc32.Checksum(n[:], castagnoli), castagnoli, b)
}

// fileHeader is what a file's header says.
type fileHeader struct {
	key storage.Key
	layout
}

// fileName is the name of key's file in Dir.
func fileName(key storage.Key) string {
	h := sha256.New()
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(key.Object)))
	h.Write(n[:])
	h.Write([]byte(key.Object))
	h.Write([]byte(key.ETag))
	return hex.EncodeToString(h.Sum(nil)[:16]) + fileSuffix
}

// encodeHead returns the bytes of key's file before its data: header,
// key, the checksums of data's blocks of block bytes, and padding.
func encodeHead(key storage.Key, data []byte, block int64) []byte {
	l := fileLayout(key, int64(len(data)), block)
	b := make([]byte, headerSize, l.dataOff)
	copy(b, fileMagic)
	binary.LittleEndian.PutUint32(b[4:], fileVersion)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(key.Object)))
	binary.LittleEndian.PutUint32(b[12:], uint32(len(key.ETag)))
	binary.LittleEndian.PutUint64(b[16:], uint64(len(data)))
	binary.LittleEndian.PutUint32(b[24:], uint32(block))
	b = append(b, key.Object...)
	b = append(b, key.ETag...)
	crc := crc32.Update(crc32.Checksum(b[:28], castagnoli), castagnoli, b[headerSize:])
	binary.LittleEndian.PutUint32(b[28:], crc)
	for i := int64(0); i*block < int64(len(data)); i++ {
		b = binary.LittleEndian.AppendUint32(b, blockSum(i, data[i*block:min((i+1)*block, int64(len(data)))]))
	}
	return b[:l.dataOff] // the zeros of the padding
}

// rawHeader is the fixed part of a header, its bounds checked.
type rawHeader struct {
	no, ne  int   // lengths of the Object and the ETag
	dataLen int64 // bytes of data
	block   int64 // block size
	crc     uint32
}

// parseFixed checks the fixed part of a header at the start of b. Any
// damage is errBadFile.
func parseFixed(b []byte) (rawHeader, error) {
	if len(b) < headerSize {
		return rawHeader{}, fmt.Errorf("%w: file ends inside the header", errBadFile)
	}
	if string(b[:4]) != fileMagic {
		return rawHeader{}, fmt.Errorf("%w: no magic number", errBadFile)
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != fileVersion {
		return rawHeader{}, fmt.Errorf("%w: format version %d, want %d", errBadFile, v, fileVersion)
	}
	no, ne := binary.LittleEndian.Uint32(b[8:]), binary.LittleEndian.Uint32(b[12:])
	dataLen, block := binary.LittleEndian.Uint64(b[16:]), binary.LittleEndian.Uint32(b[24:])
	if no > maxKeyPart || ne > maxKeyPart || dataLen > maxDataLen {
		return rawHeader{}, fmt.Errorf("%w: impossible lengths in header", errBadFile)
	}
	if block < minBlock || block > maxBlock || bits.OnesCount32(block) != 1 {
		return rawHeader{}, fmt.Errorf("%w: block size %d", errBadFile, block)
	}
	return rawHeader{no: int(no), ne: int(ne), dataLen: int64(dataLen), block: int64(block),
		crc: binary.LittleEndian.Uint32(b[28:])}, nil
}

// keyBytes returns the key's bytes that follow the fixed header in b, once
// checked against the header's checksum.
func (h rawHeader) keyBytes(b []byte) ([]byte, error) {
	end := headerSize + h.no + h.ne
	if len(b) < end {
		return nil, fmt.Errorf("%w: file ends inside the key", errBadFile)
	}
	if crc32.Update(crc32.Checksum(b[:28], castagnoli), castagnoli, b[headerSize:end]) != h.crc {
		return nil, fmt.Errorf("%w: header checksum mismatch", errBadFile)
	}
	return b[headerSize:end], nil
}

// decodeHeader reads the header and key at the start of b, which holds at
// least headerSize bytes and the key. Any damage is errBadFile.
func decodeHeader(b []byte) (fileHeader, error) {
	h, err := parseFixed(b)
	if err != nil {
		return fileHeader{}, err
	}
	k, err := h.keyBytes(b)
	if err != nil {
		return fileHeader{}, err
	}
	key := storage.Key{Object: string(k[:h.no]), ETag: string(k[h.no:])}
	return fileHeader{key: key, layout: fileLayout(key, h.dataLen, h.block)}, nil
}

// checkHeader checks that the header and key at the start of b are key's,
// with the layout l, without decoding the key.
func checkHeader(b []byte, key storage.Key, l layout) error {
	h, err := parseFixed(b)
	if err != nil {
		return err
	}
	k, err := h.keyBytes(b)
	if err != nil {
		return err
	}
	if h.no != len(key.Object) || string(k[:h.no]) != key.Object || string(k[h.no:]) != key.ETag {
		return fmt.Errorf("%w: file holds another entry than %s (etag %q)", errBadFile, key.Object, key.ETag)
	}
	if h.dataLen != l.dataLen || h.block != l.block {
		return fmt.Errorf("%w: header says %d bytes in blocks of %d, the index %d in blocks of %d",
			errBadFile, h.dataLen, h.block, l.dataLen, l.block)
	}
	return nil
}

// readHeader reads and checks the header of a file of size bytes read
// through r, and checks that its size matches. It reads the file's first
// page, and more only for a key that does not fit in it.
func readHeader(r io.ReaderAt, size int64) (fileHeader, error) {
	b := make([]byte, min(size, dataAlign))
	if err := readFull(r, b, 0, "header"); err != nil {
		return fileHeader{}, err
	}
	raw, err := parseFixed(b)
	if err != nil {
		return fileHeader{}, err
	}
	if end := int64(headerSize + raw.no + raw.ne); end > int64(len(b)) && end <= size {
		b = make([]byte, end)
		if err := readFull(r, b, 0, "key"); err != nil {
			return fileHeader{}, err
		}
	}
	h, err := decodeHeader(b)
	if err != nil {
		return fileHeader{}, err
	}
	if h.fileSize() != size {
		return fileHeader{}, fmt.Errorf("%w: file is %d bytes, header says %d", errBadFile, size, h.fileSize())
	}
	return h, nil
}

// readFull reads len(b) bytes at off; a short read is errBadFile, naming
// what it read.
func readFull(r io.ReaderAt, b []byte, off int64, what string) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: file ends inside the %s", errBadFile, what)
	}
	return err
}
