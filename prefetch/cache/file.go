package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/stoker-data/stoker/prefetch/storage"
)

// openEntryFile opens path and checks its header, that the header names
// key (if key is not nil), and that the file's length matches the header.
// It returns the file's FileInfo too, which it stats for the length.
func openEntryFile(path string, key *storage.Key) (*os.File, fileHeader, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileHeader{}, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fileHeader{}, nil, err
	}
	h, err := readHeader(f, fi.Size())
	if err == nil && key != nil && h.key != *key {
		err = fmt.Errorf("%w: file holds %s (etag %q)", errBadFile, h.key.Object, h.key.ETag)
	}
	if err != nil {
		f.Close()
		return nil, fileHeader{}, nil, err
	}
	return f, h, fi, nil
}

// readEntryInto returns the data of key's file at path, every block
// verified against its checksum, read into the buffer that buffer returns
// for the data's length (which the header gives). A damaged, short or
// foreign file is errBadFile.
func readEntryInto(path string, key storage.Key, buffer func(n int64) []byte) ([]byte, error) {
	f, h, _, err := openEntryFile(path, &key)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAll(f, h, buffer)
}

// readAll reads and verifies the whole data of the file r holds, whose
// header (checked against the file's size) is h.
func readAll(r io.ReaderAt, h fileHeader, buffer func(n int64) []byte) ([]byte, error) {
	sums := make([]byte, blockCount(h.dataLen, h.block)*sumSize) // within the file, whose size is checked
	if err := readFull(r, sums, h.tableOff, "checksums"); err != nil {
		return nil, err
	}
	data := buffer(h.dataLen)
	if err := readFull(r, data, h.dataOff, "data"); err != nil {
		return nil, err
	}
	if err := verifyBlocks(data, 0, h.block, sums); err != nil {
		return nil, err
	}
	return data, nil
}

// verifyBlocks checks data, blocks first onwards of block bytes each
// (the last may be shorter), against sums, their checksums in the table's
// encoding.
func verifyBlocks(data []byte, first, block int64, sums []byte) error {
	for i := int64(0); i*block < int64(len(data)); i++ {
		b := data[i*block : min((i+1)*block, int64(len(data)))]
		if blockSum(first+i, b) != binary.LittleEndian.Uint32(sums[i*sumSize:]) {
			return fmt.Errorf("%w: checksum mismatch in block %d", errBadFile, first+i)
		}
	}
	return nil
}

// writeEntryFile writes key's file at path atomically, in blocks of block
// bytes: into a temporary file in dir, then renamed into place. On error
// nothing is left behind. It returns the file's layout.
//
// The file is not synced: a cache needs its files whole, not durable, and
// every block carries a checksum. A crash of the machine may leave a
// renamed file whose bytes never reached the disk; the server's own reads
// verify the blocks they read and drop a bad file, and after a stop that
// was not clean (see cleanMark) DiskExtent verifies a file before a reader
// outside the server gets it. Syncing each file forced its writeback at
// once: in a cold epoch that was as much CPU as the fetch itself.
//
// Clients map these files (DiskExtent hands out their paths;
// python/stoker/_filemaps.py keeps the mappings, and views of them, past
// the pin and past eviction). So an entry file, once renamed into place,
// must never be written in place, truncated or reused: a new version of
// an entry is a new file renamed over the path, and an evicted one is
// only unlinked (removeFile), which leaves its inode and bytes to the
// mappings still alive.
func writeEntryFile(dir, path string, key storage.Key, data []byte, block int64) (l layout, err error) {
	f, err := os.CreateTemp(dir, "put-*"+tmpSuffix)
	if err != nil {
		return layout{}, err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close() // may already be closed; the rename error matters
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(encodeHead(key, data, block)); err != nil {
		return layout{}, err
	}
	if _, err = f.Write(data); err != nil {
		return layout{}, err
	}
	if err = f.Close(); err != nil {
		return layout{}, err
	}
	if err = os.Rename(tmp, path); err != nil {
		return layout{}, err
	}
	return fileLayout(key, int64(len(data)), block), nil
}

// cleanMark is the file a cache leaves in its Dir when it closes cleanly,
// after syncing the file system: its entries' bytes are on disk. Open
// removes it (durably) before writing anything, so a Dir without it was
// left by a crash, whose entries are verified before DiskExtent hands
// them out. It has neither the entry files' suffix nor the temporary
// files'.
const cleanMark = "closed-cleanly"

// takeCleanMark reports whether dir holds the clean mark, and removes it
// (syncing the directory, so that a crash from now on finds none).
func takeCleanMark(dir string) (bool, error) {
	err := os.Remove(filepath.Join(dir, cleanMark))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, syncDir(dir)
}

// putCleanMark syncs the file system dir is on (every entry file written
// before now reaches the disk), then leaves the clean mark.
func putCleanMark(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = syncFS(d)
	d.Close()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, cleanMark), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return syncDir(dir)
}

// verifyEntryFile reads every block of key's file at path, laid out as l,
// and checks it against its checksum, a window of blocks at a time
// through buf (from bufs); a damaged, short or foreign file is errBadFile.
func verifyEntryFile(path string, key storage.Key, l layout, bufs *bufPool) error {
	f, h, _, err := openEntryFile(path, &key)
	if err != nil {
		return err
	}
	defer f.Close()
	if h.layout != l {
		return fmt.Errorf("%w: the file's layout is not the one it was written with", errBadFile)
	}
	const window = 64 // blocks per read: 1 MiB of the default 16 KiB blocks
	step := window * l.block
	for off := int64(0); off < l.dataLen; off += step {
		n := min(step, l.dataLen-off)
		buf := bufs.get(l.span(off, n).bufLen())
		_, err := readRange(f, key, l, off, n, *buf)
		bufs.put(buf)
		if err != nil {
			return err
		}
	}
	return nil
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
// misnamed entry files, and of files of other format versions, which the
// caller removes and counts. Files that are not the cache's are left
// alone. Only headers are read: data is verified when read.
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
