package wds

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// gzipMagic starts every gzip stream (RFC 1952).
var gzipMagic = []byte{0x1f, 0x8b}

// DefaultMaxSize is the limit Decompress applies: 4 GiB of tar bytes.
const DefaultMaxSize = 4 << 30

// Decompress is DecompressLimit with DefaultMaxSize. A shard's bytes are
// untrusted: give DecompressLimit the limit the caller can afford.
func Decompress(data []byte) ([]byte, error) {
	return DecompressLimit(data, DefaultMaxSize)
}

// DecompressLimit returns the tar bytes of a shard: data gunzipped if it
// starts with the gzip magic, else data itself. Concatenated gzip members
// are decompressed one after another, and zero bytes after the last member
// are ignored, as gzip(1) and Python's gzip module do; anything else after
// it, a bad checksum, or a stream that ends early is an ErrCorrupt *Error.
//
// Tar bytes beyond limit (> 0) are an ErrTooLarge *Error whose Offset is
// the limit. Memory is bounded by what the shard really holds, never by
// what it claims or what a bomb would inflate to: the gzip trailer's ISIZE
// (the last member's size mod 2^32) sizes the buffer when deflate could
// produce it and it is within the limit, which for an ordinary one-member
// shard is exact: one allocation and one pass. When the stream goes on
// past it (several members, as bgzip writes, or a shard over 4 GiB), the
// rest is inflated without being kept, only counted, up to the limit; the
// whole is then inflated again into a buffer of the counted size. A bomb
// thus costs the CPU to inflate limit bytes, and no memory.
func DecompressLimit(data []byte, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = 1 << 62 // no limit: far more than memory, and limit+1 cannot overflow
	}
	if !bytes.HasPrefix(data, gzipMagic) {
		if int64(len(data)) > limit {
			return nil, tooLarge(limit, "%d bytes, more than the limit of %d", len(data), limit)
		}
		return data, nil
	}
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	hint := isizeHint(data)
	if hint > limit {
		// The last member alone is at least hint bytes (its ISIZE is
		// checked with its CRC): over the limit, or corrupt. Only count.
		hint = 0
	}
	buf := make([]byte, hint)
	n, err := io.ReadFull(r, buf)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF: // the clean end, before the hint
		if n < len(buf)/2 {
			return bytes.Clone(buf[:n]), nil // a lying hint: keep only what is real
		}
		return buf[:n], nil
	case err != nil:
		return nil, err
	}
	// The buffer is full: count what follows, keeping none of it.
	more, err := io.CopyN(io.Discard, r, limit-int64(n)+1)
	switch {
	case err != nil && err != io.EOF:
		return nil, err
	case more == 0:
		return buf, nil // the hint was exact
	case int64(n)+more > limit:
		return nil, tooLarge(limit, "gzip stream inflates to more than %d bytes, the limit", limit)
	}
	out := make([]byte, int64(n)+more)
	r, err = NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(r, out); err != nil {
		return nil, err
	}
	return out, nil
}

// isizeHint returns the gzip trailer's ISIZE, the last member's size mod
// 2^32, when deflate could have produced it from data (at most ~1032:1),
// else 0.
func isizeHint(data []byte) int64 {
	n := len(data)
	if n < 18 {
		return 0
	}
	hint := int64(binary.LittleEndian.Uint32(data[n-4:]))
	if hint > 1032*int64(n) {
		return 0
	}
	return hint
}

// tooLarge is an ErrTooLarge *Error for a shard over limit.
func tooLarge(limit int64, format string, args ...any) *Error {
	return &Error{Kind: ErrTooLarge, Offset: limit, Err: fmt.Errorf(format, args...)}
}

// NewReader returns a reader of the tar bytes of the shard read from r: a
// gunzipping reader if r starts with the gzip magic, else r's bytes as they
// are (through a buffer). It reads ahead of what its caller has read, so r
// must not be used afterwards. Decompression errors are ErrCorrupt *Errors
// whose Offset is the number of bytes decompressed before the failure;
// errors from r itself are returned unchanged.
func NewReader(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(len(gzipMagic))
	if err != nil && err != io.EOF {
		return nil, err
	}
	if !bytes.Equal(head, gzipMagic) {
		return br, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, gzipError(err, 0)
	}
	zr.Multistream(false)
	return &gunzipper{br: br, zr: zr}, nil
}

// gunzipper decompresses a gzip stream of one or more members, stopping
// cleanly at EOF or at zero padding after a member.
type gunzipper struct {
	br  *bufio.Reader
	zr  *gzip.Reader
	n   int64 // bytes decompressed so far
	err error // sticky error, io.EOF at the end
}

func (g *gunzipper) Read(p []byte) (int, error) {
	for g.err == nil {
		n, err := g.zr.Read(p)
		g.n += int64(n)
		switch {
		case err == io.EOF:
			err = g.nextMember()
		case err != nil:
			err = gzipError(err, g.n)
		}
		if err != nil {
			g.err = err
		}
		if n > 0 || len(p) == 0 {
			return n, nil
		}
	}
	return 0, g.err
}

// nextMember positions zr on the gzip member after the current one. It
// returns io.EOF if only zero bytes (or nothing) follow.
func (g *gunzipper) nextMember() error {
	for {
		b, err := g.br.ReadByte()
		if err == io.EOF {
			return io.EOF
		}
		if err != nil {
			return err
		}
		if b != 0 {
			break
		}
	}
	if err := g.br.UnreadByte(); err != nil {
		return err
	}
	if err := g.zr.Reset(g.br); err != nil {
		if errors.Is(err, gzip.ErrHeader) {
			return corrupt("", g.n, "gzip: data after the last gzip member: %w", err)
		}
		return gzipError(err, g.n)
	}
	g.zr.Multistream(false)
	return nil
}

// gzipError makes err an ErrCorrupt *Error if it says the gzip stream is
// damaged; other errors come from the underlying reader and pass through.
func gzipError(err error, off int64) error {
	var ce flate.CorruptInputError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return corrupt("", off, "gzip: stream truncated: %w", io.ErrUnexpectedEOF)
	case errors.Is(err, gzip.ErrHeader), errors.Is(err, gzip.ErrChecksum), errors.As(err, &ce):
		return corrupt("", off, "gzip: %w", err)
	}
	return err
}
