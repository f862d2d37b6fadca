// Package wds indexes WebDataset shards: tar archives (ustar, GNU or pax,
// optionally gzipped) whose members are grouped into samples by name. The
// server keeps a shard's decompressed tar bytes in its cache; the index says,
// for every sample, its key and the byte range of each field in those bytes,
// so a field is served as a sub-slice (FieldData) without parsing the tar
// again.
//
// Use Decompress (or NewReader for a stream) to get the tar bytes, then
// IndexBytes (or Index). Members are read with archive/tar. IndexShard
// returns the same index in a compact form, ShardIndex (a struct of arrays,
// about 66 bytes a sample of three fields in memory where []Sample takes
// about 200), with a checksummed binary encoding of about 12 bytes a
// sample (MarshalBinary, UnmarshalShardIndex).
//
// # Samples, as webdataset makes them
//
// Grouping and naming follow the Python webdataset library
// (tariterators.py: tar_file_iterator, base_plus_ext, group_by_keys)
// exactly, so a trainer sees the samples webdataset would give it:
//
//   - Only regular files are members (types '0', NUL and '7'); directories,
//     links, devices, fifos and pax global headers are skipped.
//   - Metadata is skipped: a top-level name that starts and ends with "__"
//     (such as "__index__"), and any name matching ^__[^/]*__($|/).
//   - The key is the name up to the first dot of the file name (after the
//     last '/'), the field the rest: "a/b/000123.seg.png" is key
//     "a/b/000123", field "seg.png". Names the library's regular expression
//     ^((?:.*/|)[^.]+)[.]([^/]*)$ does not match are skipped: no dot in the
//     file name, or a top-level name that starts with its dot (".jpg"). A
//     file name below a folder that starts with a dot is kept when the
//     folder's own name has no dot, as the expression does: "a/.jpg" is
//     key "a/", field "jpg"; "v1.2/.jpg" is skipped.
//   - Field names are lowercased as Python's str.lower does; keys are not.
//   - Consecutive members with the same key form one sample; the same key
//     later in the shard starts another sample, as in webdataset.
//   - A field seen twice in one sample, or named "__key__" or "__url__"
//     (webdataset's own entries), is an ErrCorrupt error: webdataset raises.
//
// # Damaged and unusual shards
//
// Where webdataset and Python's tarfile quietly stop at a bad header after
// the first member, this package reports ErrCorrupt instead, naming the
// member and offset: a shard whose tail is unreadable is damaged, and
// serving a silently shorter epoch would hide it. In detail:
//
//   - Data that ends inside a header or inside a member's data is
//     ErrCorrupt (truncated), as is a bad header checksum or format, a pax
//     or GNU long-name header with no member after it, and an empty file.
//   - A stream that ends after a complete member, whether the two
//     end-of-archive zero blocks are all there, cut short, or missing, and
//     even within the member's padding, is accepted: no member's bytes are
//     lost (GNU tar and Python's tarfile accept it too).
//   - One zero block ends the archive, whatever follows, as in Python's
//     tarfile and GNU tar (which warns "A lone zero block").
//   - GNU sparse members (old GNU or pax format) are ErrUnsupported: their
//     bytes in the tar are not their contents.
//   - Gzip: concatenated members are read in turn, zero bytes after the
//     last are ignored (gzip(1), Python); other trailing bytes, a bad CRC or
//     length, or a cut stream are ErrCorrupt. Other compressions (bzip2, xz,
//     zstd) are not recognized, so they fail as a bad tar header.
//
// It imports nothing of Stoker (a format may import prefetch/storage and
// shuffle, never a cache, dataset, reader or other format):
// prefetch/dataset's Layout joins the formats to the catalog and the reads
// (internal/layout checks it).
package wds
