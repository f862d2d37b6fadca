// Package dsindex reads and writes the dataset index kept beside a
// WebDataset's shards: webdataset's wids shard-index JSON, which lists every
// shard with its sample count and size, so a dataset's plan needs no shard
// read, plus a Stoker extension that webdataset ignores: each shard's ETag
// and where its compact wds.ShardIndex lies in a sibling blob object.
//
// The index of the shards in folder D is D/wids-index.json, its blob
// D/wids-index.stoker (every shard's wds.ShardIndex.MarshalBinary, one
// after another). `stoker index URL` writes both; wids reads the JSON:
//
//	{"__kind__": "wids-shard-index-v1", "wids_version": 1, "name": "train",
//	 "shardlist": [{"url": "train-000000.tar", "nsamples": 1000, "filesize": 104857600,
//	                "stoker": {"etag": "\"9b2c…\"", "index_offset": 0, "index_length": 12147, "index_crc32c": "1a2b3c4d"}}, …],
//	 "stoker": {"version": 1, "blob": "wids-index.stoker", "blob_size": 1214700, "blob_etag": "\"77e1…\""}}
//
// Shard URLs are relative to the folder of the JSON, as wids resolves them
// (a path starting with "/" keeps the scheme and host; a URL with a scheme
// stands as it is). Everything read is untrusted: sizes, counts and ranges
// are bounded and checked, and the blob slices carry a CRC-32C.
package dsindex

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/stoker-data/stoker/prefetch/storage"
)

// Names and limits.
const (
	// IndexName is the name of the index JSON in the shards' folder.
	IndexName = "wids-index.json"
	// BlobName is the name of the blob of compact shard indexes beside it.
	BlobName = "wids-index.stoker"
	// Kind is the "__kind__" webdataset's widsindex writes.
	Kind = "wids-shard-index-v1"
	// MaxJSONBytes bounds the index JSON read.
	MaxJSONBytes = 256 << 20
	// MaxEntries bounds the shards of one index.
	MaxEntries = 10_000_000
	// MaxSamples bounds one shard's sample count.
	MaxSamples = 1<<32 - 1
	// MaxShardIndexBytes bounds one shard's slice of the blob.
	MaxShardIndexBytes = 64 << 20
)

// Entry is one shard of an index.
type Entry struct {
	// URL is the shard's absolute URL (resolved against the index's folder).
	URL string
	// Samples is the shard's sample count ("nsamples").
	Samples int
	// Size is the shard object's size in bytes ("filesize"), -1 if the
	// index does not say.
	Size int64
	// ETag is the shard object's ETag when indexed, "" if not recorded.
	ETag string
	// IndexOffset and IndexLength locate the shard's compact index in the
	// blob; IndexLength 0 means the index records no compact index for it.
	IndexOffset, IndexLength int64
	// IndexCRC is the CRC-32C (Castagnoli) of that slice.
	IndexCRC uint32
}

// Blob is the object holding the compact shard indexes.
type Blob struct {
	URL  string // absolute
	Size int64
	ETag string // "" if not recorded
}

// Index is a dataset index: where it lies and its shards.
type Index struct {
	// URL is the URL of the JSON; relative shard URLs resolve against its
	// folder.
	URL string
	// Name is the dataset's name ("name"), may be empty.
	Name string
	// Entries are the shards, in the index's order.
	Entries []Entry
	// Blob is where the compact indexes lie; zero if the index has none
	// (one written by webdataset's own widsindex).
	Blob Blob
}

// The JSON form.
type indexJSON struct {
	Kind        string      `json:"__kind__,omitempty"`
	WidsVersion *int        `json:"wids_version"`
	Name        string      `json:"name,omitempty"`
	ShardList   []entryJSON `json:"shardlist"`
	Datasets    []any       `json:"datasets,omitempty"`
	Stoker      *blobJSON   `json:"stoker,omitempty"`
}

type entryJSON struct {
	URL      string   `json:"url"`
	NSamples *int64   `json:"nsamples"`
	FileSize *int64   `json:"filesize,omitempty"`
	Stoker   *extJSON `json:"stoker,omitempty"`
}

type extJSON struct {
	ETag   string `json:"etag,omitempty"`
	Offset *int64 `json:"index_offset,omitempty"`
	Length *int64 `json:"index_length,omitempty"`
	CRC32C string `json:"index_crc32c,omitempty"`
}

type blobJSON struct {
	Version int    `json:"version"`
	Blob    string `json:"blob"`
	Size    int64  `json:"blob_size"`
	ETag    string `json:"blob_etag,omitempty"`
}

// extVersion is the version of the Stoker extension written.
const extVersion = 1

// corrupt is the error for an index that is not one.
func corrupt(url, format string, args ...any) error {
	return &storage.Error{Op: "parse index", Object: url, Kind: storage.ErrCorrupt, Err: fmt.Errorf(format, args...)}
}

// Parse reads the index JSON data found at indexURL. The data are
// untrusted: over MaxJSONBytes, more than MaxEntries shards, a
// wids_version other than 1, another __kind__, sub-datasets, empty or
// repeated shard URLs, counts or sizes out of range, or blob slices outside
// the blob are an ErrCorrupt *storage.Error naming indexURL.
func Parse(indexURL string, data []byte) (*Index, error) {
	if len(data) > MaxJSONBytes {
		return nil, corrupt(indexURL, "%d bytes, over the limit of %d", len(data), MaxJSONBytes)
	}
	dir, ok := folder(indexURL)
	if !ok {
		return nil, &storage.Error{Op: "parse index", Object: indexURL, Kind: storage.ErrBadURL, Err: errors.New("want scheme://host/path")}
	}
	var j indexJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, corrupt(indexURL, "not an index: %v", err)
	}
	switch {
	case j.WidsVersion == nil || *j.WidsVersion != 1:
		return nil, corrupt(indexURL, "wids_version missing or not 1")
	case j.Kind != "" && j.Kind != Kind:
		return nil, corrupt(indexURL, "__kind__ %q, want %q", j.Kind, Kind)
	case len(j.Datasets) > 0:
		return nil, corrupt(indexURL, "sub-datasets (\"datasets\") are not supported: list the shards in \"shardlist\"")
	case len(j.ShardList) == 0:
		return nil, corrupt(indexURL, "no shards in \"shardlist\"")
	case len(j.ShardList) > MaxEntries:
		return nil, corrupt(indexURL, "%d shards, over the limit of %d", len(j.ShardList), MaxEntries)
	}
	x := &Index{URL: indexURL, Name: j.Name, Entries: make([]Entry, len(j.ShardList))}
	if b := j.Stoker; b != nil {
		if b.Version != extVersion || b.Blob == "" || b.Size < 0 {
			return nil, corrupt(indexURL, "stoker extension: version %d, blob %q of %d bytes; want version %d and a blob", b.Version, b.Blob, b.Size, extVersion)
		}
		x.Blob = Blob{URL: resolve(dir, b.Blob), Size: b.Size, ETag: b.ETag}
	}
	seen := make(map[string]int, len(j.ShardList))
	for i, s := range j.ShardList {
		e, err := x.entry(dir, i, s)
		if err != nil {
			return nil, err
		}
		if k, dup := seen[e.URL]; dup {
			return nil, corrupt(indexURL, "shard %d (%s) repeats shard %d", i, e.URL, k)
		}
		seen[e.URL] = i
		x.Entries[i] = e
	}
	return x, nil
}

// entry checks and resolves shard i of the JSON.
func (x *Index) entry(dir string, i int, s entryJSON) (Entry, error) {
	bad := func(format string, args ...any) error {
		return corrupt(x.URL, "shard %d (%.200q): %s", i, s.URL, fmt.Sprintf(format, args...))
	}
	if s.URL == "" || strings.ContainsAny(s.URL, "\x00\n\r") {
		return Entry{}, bad("no url, or one with control characters")
	}
	if s.NSamples == nil || *s.NSamples < 0 || *s.NSamples > MaxSamples {
		return Entry{}, bad("nsamples missing or outside [0, %d]", int64(MaxSamples))
	}
	e := Entry{URL: resolve(dir, s.URL), Samples: int(*s.NSamples), Size: -1}
	if s.FileSize != nil {
		if *s.FileSize < 0 {
			return Entry{}, bad("negative filesize %d", *s.FileSize)
		}
		e.Size = *s.FileSize
	}
	if ext := s.Stoker; ext != nil {
		e.ETag = ext.ETag
		if ext.Length != nil || ext.Offset != nil {
			var off, length int64
			if ext.Offset != nil {
				off = *ext.Offset
			}
			if ext.Length != nil {
				length = *ext.Length
			}
			if x.Blob.URL == "" {
				return Entry{}, bad("a blob slice, but the index names no blob")
			}
			if off < 0 || length <= 0 || length > MaxShardIndexBytes || off > x.Blob.Size-length {
				return Entry{}, bad("blob slice [%d, %d+%d) outside the %d-byte blob, or empty, or over %d bytes",
					off, off, length, x.Blob.Size, MaxShardIndexBytes)
			}
			crc, err := hex.DecodeString(ext.CRC32C)
			if err != nil || len(crc) != 4 {
				return Entry{}, bad("index_crc32c %q is not 8 hex digits", ext.CRC32C)
			}
			e.IndexOffset, e.IndexLength = off, length
			e.IndexCRC = uint32(crc[0])<<24 | uint32(crc[1])<<16 | uint32(crc[2])<<8 | uint32(crc[3])
		}
	}
	return e, nil
}

// Marshal returns the JSON form of x: shard URLs under the index's folder
// relative to it, others absolute.
func (x *Index) Marshal() ([]byte, error) {
	dir, ok := folder(x.URL)
	if !ok {
		return nil, &storage.Error{Op: "write index", Object: x.URL, Kind: storage.ErrBadURL, Err: errors.New("want scheme://host/path")}
	}
	one := 1
	j := indexJSON{Kind: Kind, WidsVersion: &one, Name: x.Name, ShardList: make([]entryJSON, len(x.Entries))}
	if x.Blob.URL != "" {
		j.Stoker = &blobJSON{Version: extVersion, Blob: relative(dir, x.Blob.URL), Size: x.Blob.Size, ETag: x.Blob.ETag}
	}
	for i, e := range x.Entries {
		n := int64(e.Samples)
		s := entryJSON{URL: relative(dir, e.URL), NSamples: &n}
		if e.Size >= 0 {
			size := e.Size
			s.FileSize = &size
		}
		if e.ETag != "" || e.IndexLength > 0 {
			s.Stoker = &extJSON{ETag: e.ETag}
			if e.IndexLength > 0 {
				off, length := e.IndexOffset, e.IndexLength
				s.Stoker.Offset, s.Stoker.Length = &off, &length
				s.Stoker.CRC32C = fmt.Sprintf("%08x", e.IndexCRC)
			}
		}
		j.ShardList[i] = s
	}
	return json.MarshalIndent(j, "", " ")
}

// Shards returns the shards an index names, as objects to read: for a
// dataset URL that names the index JSON. Size is -1 and ETag "" where the
// index does not record them: Stat those before use.
func Shards(x *Index) []storage.Object {
	objs := make([]storage.Object, len(x.Entries))
	for i, e := range x.Entries {
		objs[i] = storage.Object{URL: e.URL, Size: e.Size, ETag: e.ETag}
	}
	return objs
}

// Locate returns the URL of the index to look for beside the shards objs
// of datasetURL: datasetURL itself when it names a .json, else IndexName in
// the deepest folder that holds every shard.
func Locate(datasetURL string, objs []storage.Object) string {
	if strings.HasSuffix(datasetURL, ".json") {
		return datasetURL
	}
	if len(objs) == 0 {
		dir, _ := folder(datasetURL)
		return dir + IndexName
	}
	common := objs[0].URL
	for _, o := range objs[1:] {
		n := 0
		for n < min(len(common), len(o.URL)) && common[n] == o.URL[n] {
			n++
		}
		common = common[:n]
	}
	dir, _ := folder(common)
	return dir + IndexName
}

// folder returns the part of url up to and with its last "/" after the
// scheme and host ("s3://b/train/x.json" -> "s3://b/train/"), and whether
// url has a scheme.
func folder(url string) (string, bool) {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok || scheme == "" {
		return "", false
	}
	host, _, _ := strings.Cut(rest, "/")
	i := strings.LastIndexByte(url, '/')
	if i < len(scheme)+3+len(host) {
		return scheme + "://" + host + "/", true
	}
	return url[:i+1], true
}

// resolve returns the absolute URL of ref, found in the index whose folder
// is dir, as wids's urlmerge does: a URL with a scheme stands as it is, a
// path starting with "/" keeps dir's scheme and host, and any other is
// joined to dir's path and cleaned.
func resolve(dir, ref string) string {
	if strings.Contains(ref, "://") {
		return ref
	}
	scheme, rest, _ := strings.Cut(dir, "://")
	host, dirPath, _ := strings.Cut(rest, "/")
	base := scheme + "://" + host
	if strings.HasPrefix(ref, "/") {
		return base + ref
	}
	return base + path.Clean("/"+dirPath+"/"+ref)
}

// relative returns url relative to dir when it lies under it and resolves
// back to itself, else url.
func relative(dir, url string) string {
	if rel, ok := strings.CutPrefix(url, dir); ok && rel != "" && !strings.Contains(rel, "://") && resolve(dir, rel) == url {
		return rel
	}
	return url
}
