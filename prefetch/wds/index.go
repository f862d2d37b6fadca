package wds

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

const blockSize = 512 // tar's unit: headers are one block, data is padded to whole blocks

// Field is one member of a sample: its field name (the lowercased file name
// after the key's dot, e.g. "seg.png") and where its bytes lie in the
// decompressed tar.
type Field struct {
	Name   string `json:"name"`
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
}

// Sample is a run of consecutive tar members that share a key.
type Sample struct {
	Key    string  `json:"key"`
	Fields []Field `json:"fields"`
}

// IndexBytes is Index over a decompressed tar held in memory.
func IndexBytes(data []byte) ([]Sample, error) {
	return Index(bytes.NewReader(data))
}

// Index reads a decompressed tar stream to its end and returns its samples in
// archive order, grouped and named as the Python webdataset library does (see
// the package documentation). Field offsets count from the first byte read
// from r. Errors about the bytes are *Error values of kind ErrCorrupt or
// ErrUnsupported; an error from r is returned wrapped with the offset.
func Index(r io.Reader) ([]Sample, error) {
	ix := indexer{c: counter{r: r}, seen: make(map[string]struct{})}
	tr := tar.NewReader(&ix.c)
	for {
		ix.hdrOff = alignUp(ix.dataEnd)
		ix.c.watch(ix.hdrOff)
		hdr, err := tr.Next()
		if errors.Is(err, tar.ErrInsecurePath) {
			err = nil // names are only keys here, never paths to write to
		}
		if err != nil {
			if err := ix.end(err); err != nil {
				return nil, err
			}
			break
		}
		if err := ix.add(hdr); err != nil {
			return nil, err
		}
	}
	if err := Validate(ix.samples, ix.c.n); err != nil {
		return nil, err // cannot happen; a last guard for the cache's sake
	}
	return ix.samples, nil
}

// indexer is the state of one Index call.
type indexer struct {
	c       counter
	samples []Sample
	seen    map[string]struct{} // field names of the last sample
	hdrOff  int64               // offset of the header block Next reads first
	member  string              // name of the last member returned by Next
	dataOff int64               // offset of its data
	dataEnd int64               // end of its data (not counting padding)
}

// add records the member Next just returned; its data starts at c.n.
func (ix *indexer) add(hdr *tar.Header) error {
	ix.member, ix.dataOff, ix.dataEnd = hdr.Name, ix.c.n, ix.c.n
	if !headerOnly(hdr.Typeflag) {
		ix.dataEnd = addSat(ix.dataOff, hdr.Size)
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse: // Python's REGULAR_TYPES
	default:
		return nil // directories, links, devices, fifos, global headers, vendor types
	}
	if isSparse(hdr) {
		return &Error{Kind: ErrUnsupported, Member: hdr.Name, Offset: ix.hdrOff,
			Err: errors.New("GNU sparse file: its contents are not one byte range of the tar")}
	}
	if isMeta(hdr.Name) {
		return nil
	}
	key, field, ok := splitKey(hdr.Name)
	if !ok {
		return nil
	}
	field = lowerField(field)
	if n := len(ix.samples); n == 0 || ix.samples[n-1].Key != key {
		ix.samples = append(ix.samples, Sample{Key: key})
		if len(ix.seen) > 64 {
			ix.seen = make(map[string]struct{}) // clear costs the map's capacity
		} else {
			clear(ix.seen)
		}
	}
	_, dup := ix.seen[field]
	if dup || field == reservedFields[0] || field == reservedFields[1] {
		return corrupt(hdr.Name, ix.hdrOff, "duplicate field %q in sample %q", field, key)
	}
	ix.seen[field] = struct{}{}
	s := &ix.samples[len(ix.samples)-1]
	s.Fields = append(s.Fields, Field{Name: field, Offset: ix.dataOff, Size: hdr.Size})
	return nil
}

// end decides what an error from Next means: the end of the archive (nil),
// an error from the reader, or a corrupt shard.
func (ix *indexer) end(err error) error {
	c := &ix.c
	if c.err != nil && errors.Is(err, c.err) {
		var we *Error
		if errors.As(err, &we) { // gzip says what and where; add the member
			e := *we
			if e.Member == "" && c.n < ix.dataEnd {
				e.Member = ix.member
			}
			return &e
		}
		return fmt.Errorf("wds: reading shard at offset %d: %w", c.n, err)
	}
	// Only zero bytes from hdrOff through its whole block (or to the end):
	// the start of the end-of-archive marker.
	zeroBlock := c.nz < 0 || c.nz >= ix.hdrOff+blockSize
	switch {
	case err == io.EOF && c.nz >= 0:
		return corrupt("", ix.hdrOff, "archive ends after an extended (pax or GNU long name) header, before its member")
	case err == io.EOF && c.n == 0:
		return corrupt("", 0, "empty file, not a tar archive")
	case err == io.EOF:
		return nil
	case c.n < ix.dataEnd:
		return corrupt(ix.member, c.n, "data truncated after %d of %d bytes: %w",
			c.n-ix.dataOff, ix.dataEnd-ix.dataOff, io.ErrUnexpectedEOF)
	case zeroBlock && (ix.hdrOff > 0 || c.n >= blockSize):
		return nil // a zero block ends the archive whatever follows; the marker may be cut short
	case errors.Is(err, io.ErrUnexpectedEOF):
		return corrupt("", ix.hdrOff, "tar header truncated: the stream ends at offset %d: %w", c.n, err)
	case ix.member != "":
		return corrupt("", ix.hdrOff, "bad tar header after member %q: %w", ix.member, err)
	default:
		return corrupt("", ix.hdrOff, "bad tar header: %w", err)
	}
}

// headerOnly lists the types whose Size archive/tar ignores (no data follows).
func headerOnly(flag byte) bool {
	switch flag {
	case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
		return true
	}
	return false
}

// isSparse reports an old GNU sparse member or a pax one (GNU.sparse.*
// records, any version).
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

func alignUp(n int64) int64 {
	if r := n % blockSize; r != 0 {
		return addSat(n, blockSize-r)
	}
	return n
}

// addSat adds two non-negative offsets, saturating instead of overflowing.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// counter counts the bytes tar.Reader takes from r. It is deliberately not
// an io.Seeker, so tar.Reader reads through (and so checks) every byte it
// skips, and right after Next the count is the offset of the member's data.
type counter struct {
	r    io.Reader
	n    int64 // bytes read from r
	mark int64 // offset from which nz is tracked
	nz   int64 // offset of the first non-zero byte at or after mark; -1 if none yet
	err  error // the last error from r other than io.EOF
}

// watch starts looking for the first non-zero byte at or after off.
func (c *counter) watch(off int64) { c.mark, c.nz = off, -1 }

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n < 0 || n > len(p) {
		c.err = fmt.Errorf("wds: reader returned %d bytes for a %d-byte buffer", n, len(p))
		return 0, c.err
	}
	if c.nz < 0 && c.n+int64(n) > c.mark {
		for i := max(c.mark-c.n, 0); i < int64(n); i++ {
			if p[i] != 0 {
				c.nz = c.n + i
				break
			}
		}
	}
	c.n += int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}
