package cache

import (
	"io"

	"github.com/stoker-data/stoker/prefetch/storage"
)

// metaRead is how far into a file one read for a range's header and
// checksums may go: its first page, which holds them for shards up to
// some 16 MiB in 16 KiB blocks. Beyond, the checksums take a second read.
const metaRead = dataAlign

// rangeSpan plans a range read of data bytes [off, off+n).
type rangeSpan struct {
	first, last int64 // the blocks covering the range: [first, last); none for n = 0
	start, end  int64 // the data bytes those blocks hold
	meta        int64 // bytes of header, key and checksums read before them
	oneRead     bool  // the header and the checksums are read at once, from the file's start
}

// span plans a range read of data bytes [off, off+n), which lie within
// the data.
func (l layout) span(off, n int64) rangeSpan {
	var s rangeSpan
	if n > 0 {
		s.first, s.last = off/l.block, blockCount(off+n, l.block)
		s.start, s.end = s.first*l.block, min(s.last*l.block, l.dataLen)
	}
	if end := l.tableOff + s.last*sumSize; end <= metaRead {
		s.meta, s.oneRead = end, true
	} else {
		s.meta = l.tableOff + (s.last-s.first)*sumSize
	}
	return s
}

// bufLen is the length of the buffer a range read needs.
func (s rangeSpan) bufLen() int64 { return s.meta + s.end - s.start }

// readRange returns bytes [off, off+n) of the data of the file r holds,
// which the index says is key's with the layout l; the caller checks the
// range lies within l.dataLen and hands a buffer of l.span(off, n).bufLen()
// bytes, which the returned bytes are part of. It reads the header and
// the checksums of the blocks covering the range (one read when they lie
// in the first metaRead bytes), then those blocks (one read), and
// verifies the header and each block: a damaged header, checksum or block
// is errBadFile, and so is a file that ends early. Other blocks are not
// read, and a file longer than its header says is only noticed by whole
// reads.
func readRange(r io.ReaderAt, key storage.Key, l layout, off, n int64, buf []byte) ([]byte, error) {
	s := l.span(off, n)
	meta, data := buf[:s.meta], buf[s.meta:s.bufLen()]
	var sums []byte
	if s.oneRead {
		if err := readFull(r, meta, 0, "header"); err != nil {
			return nil, err
		}
		if err := checkHeader(meta, key, l); err != nil {
			return nil, err
		}
		sums = meta[l.tableOff+s.first*sumSize:]
	} else {
		if err := readFull(r, meta[:l.tableOff], 0, "header"); err != nil {
			return nil, err
		}
		if err := checkHeader(meta[:l.tableOff], key, l); err != nil {
			return nil, err
		}
		sums = meta[l.tableOff:]
		if err := readFull(r, sums, l.tableOff+s.first*sumSize, "checksums"); err != nil {
			return nil, err
		}
	}
	if n == 0 {
		return data[:0:0], nil
	}
	if err := readFull(r, data, l.dataOff+s.start, "data"); err != nil {
		return nil, err
	}
	if err := verifyBlocks(data, s.first, l.block, sums); err != nil {
		return nil, err
	}
	lo := off - s.start
	return data[lo : lo+n : lo+n], nil
}
