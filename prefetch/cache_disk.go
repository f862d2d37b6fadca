package prefetch

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The disk tier keeps one file per entry in Dir, named after a hash of the
// key with fileSuffix. A file is a header, the key, zero padding, then the
// data, which starts at a multiple of 4 KiB so that a local reader can hand
// the file's extent to GPUDirect Storage (cuFile) with aligned offsets:
//
//	offset  size  field
//	0       4     magic "STKC"
//	4       4     format version (2)
//	8       4     length of the key's Object
//	12      4     length of the key's ETag
//	16      8     length of the data
//	24      4     CRC-32C (Castagnoli) of the data
//	28      4     CRC-32C of bytes 0-27, the Object and the ETag
//	32      ...   Object, ETag, zeros up to dataOffset(key)
//	dataOffset    data
//
// Integers are little-endian. The key in the header maps a file back to its
// entry when a restarted cache scans Dir; the header's own checksum keeps a
// damaged key from naming another entry.
const (
	fileMagic   = "STKC"
	fileVersion = 2 // 1 had no padding; its files are dropped at open
	headerSize  = 32
	dataAlign   = 4096    // data offset alignment (cuFile's and O_DIRECT's unit)
	maxKeyPart  = 1 << 16 // longest Object or ETag a header may name
	maxDataLen  = 1 << 62 // keeps offsets within int64
	fileSuffix  = ".shard"
	tmpSuffix   = ".tmp" // files being written; left over only by a crash
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errBadFile marks a disk entry whose header, length or checksum is wrong.
var errBadFile = errors.New("bad cache file")

// fileHeader is what a file's header says.
type fileHeader struct {
	key     CacheKey
	dataLen int64
	dataCRC uint32
	dataOff int64 // where the data starts
}

// fileName is the name of key's file in Dir.
func fileName(key CacheKey) string {
	h := sha256.New()
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(key.Object)))
	h.Write(n[:])
	h.Write([]byte(key.Object))
	h.Write([]byte(key.ETag))
	return hex.EncodeToString(h.Sum(nil)[:16]) + fileSuffix
}

// dataOffset is where the data of key's file starts: after the header and
// the key, rounded up to dataAlign.
func dataOffset(key CacheKey) int64 {
	n := int64(headerSize + len(key.Object) + len(key.ETag))
	return (n + dataAlign - 1) / dataAlign * dataAlign
}

// encodeHeader returns the header, key and padding of a file holding
// dataLen bytes whose checksum is dataCRC.
func encodeHeader(key CacheKey, dataLen int64, dataCRC uint32) []byte {
	b := make([]byte, headerSize, headerSize+len(key.Object)+len(key.ETag))
	copy(b, fileMagic)
	binary.LittleEndian.PutUint32(b[4:], fileVersion)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(key.Object)))
	binary.LittleEndian.PutUint32(b[12:], uint32(len(key.ETag)))
	binary.LittleEndian.PutUint64(b[16:], uint64(dataLen))
	binary.LittleEndian.PutUint32(b[24:], dataCRC)
	b = append(b, key.Object...)
	b = append(b, key.ETag...)
	crc := crc32.Update(crc32.Checksum(b[:28], castagnoli), castagnoli, b[headerSize:])
	binary.LittleEndian.PutUint32(b[28:], crc)
	return append(b, make([]byte, dataOffset(key)-int64(len(b)))...)
}

// decodeHeader reads a header and key from r. Any damage is errBadFile.
func decodeHeader(r io.Reader) (fileHeader, error) {
	var b [headerSize]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return fileHeader{}, readError(err, "header")
	}
	if string(b[:4]) != fileMagic {
		return fileHeader{}, fmt.Errorf("%w: no magic number", errBadFile)
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != fileVersion {
		return fileHeader{}, fmt.Errorf("%w: format version %d", errBadFile, v)
	}
	no, ne := binary.LittleEndian.Uint32(b[8:]), binary.LittleEndian.Uint32(b[12:])
	dataLen := binary.LittleEndian.Uint64(b[16:])
	if no > maxKeyPart || ne > maxKeyPart || dataLen > maxDataLen {
		return fileHeader{}, fmt.Errorf("%w: impossible lengths in header", errBadFile)
	}
	k := make([]byte, no+ne)
	if _, err := io.ReadFull(r, k); err != nil {
		return fileHeader{}, readError(err, "key")
	}
	crc := crc32.Update(crc32.Checksum(b[:28], castagnoli), castagnoli, k)
	if crc != binary.LittleEndian.Uint32(b[28:]) {
		return fileHeader{}, fmt.Errorf("%w: header checksum mismatch", errBadFile)
	}
	key := CacheKey{Object: string(k[:no]), ETag: string(k[no:])}
	return fileHeader{
		key:     key,
		dataLen: int64(dataLen),
		dataCRC: binary.LittleEndian.Uint32(b[24:]),
		dataOff: dataOffset(key),
	}, nil
}

// readError turns a short read into errBadFile and passes others through.
func readError(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: file ends inside the %s", errBadFile, what)
	}
	return err
}

// openEntryFile opens path and checks that its header names key (if key is
// not nil) and that its length matches the header. It returns the file's
// FileInfo too, which it stats for the length.
func openEntryFile(path string, key *CacheKey) (*os.File, fileHeader, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileHeader{}, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fileHeader{}, nil, err
	}
	h, err := decodeHeader(f)
	if err == nil && key != nil && h.key != *key {
		err = fmt.Errorf("%w: file holds %s (etag %q)", errBadFile, h.key.Object, h.key.ETag)
	}
	if err == nil && h.dataOff+h.dataLen != fi.Size() {
		err = fmt.Errorf("%w: file is %d bytes, header says %d", errBadFile, fi.Size(), h.dataOff+h.dataLen)
	}
	if err != nil {
		f.Close()
		return nil, fileHeader{}, nil, err
	}
	return f, h, fi, nil
}

// readEntryInto returns the data of key's file at path, verified against
// its checksum, read into the buffer that buffer returns for the data's
// length (which the header gives). A damaged, short or foreign file is
// errBadFile.
func readEntryInto(path string, key CacheKey, buffer func(n int64) []byte) ([]byte, error) {
	f, h, _, err := openEntryFile(path, &key)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data := buffer(h.dataLen)
	if _, err := io.ReadFull(io.NewSectionReader(f, h.dataOff, h.dataLen), data); err != nil {
		return nil, readError(err, "data")
	}
	if crc32.Checksum(data, castagnoli) != h.dataCRC {
		return nil, fmt.Errorf("%w: data checksum mismatch", errBadFile)
	}
	return data, nil
}

// writeEntryFile writes key's file at path atomically: into a temporary
// file in dir, synced, then renamed into place; the directory is synced
// so the rename survives a crash. On error nothing is left behind.
func writeEntryFile(dir, path string, key CacheKey, data []byte) (err error) {
	f, err := os.CreateTemp(dir, "put-*"+tmpSuffix)
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close() // may already be closed; the rename error matters
			os.Remove(tmp)
		}
	}()
	hdr := encodeHeader(key, int64(len(data)), crc32.Checksum(data, castagnoli))
	if _, err = f.Write(hdr); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes renames and removals in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// scanned is an entry file found in Dir when the cache opens.
type scanned struct {
	h    fileHeader
	name string
	mod  time.Time
}

// scanDir lists the entry files in dir, oldest first (by modification
// time, so a restarted cache evicts what was written longest ago first).
// It removes leftover temporary files and returns the names of damaged or
// misnamed entry files, which the caller removes and counts. Files that
// are not the cache's are left alone.
func scanDir(dir string) (found []scanned, bad map[string]error, err error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	bad = map[string]error{}
	for _, de := range des {
		name := de.Name()
		if !de.Type().IsRegular() {
			continue
		}
		if strings.HasSuffix(name, tmpSuffix) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, nil, err
			}
			continue
		}
		if !strings.HasSuffix(name, fileSuffix) {
			continue
		}
		f, h, fi, err := openEntryFile(filepath.Join(dir, name), nil)
		if err == nil {
			f.Close()
			if fileName(h.key) != name {
				err = fmt.Errorf("%w: file is named %s, its key's name is %s", errBadFile, name, fileName(h.key))
			}
		}
		if err != nil {
			bad[name] = err
			continue
		}
		found = append(found, scanned{h: h, name: name, mod: fi.ModTime()})
	}
	slices.SortFunc(found, func(a, b scanned) int {
		if c := a.mod.Compare(b.mod); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return found, bad, nil
}
