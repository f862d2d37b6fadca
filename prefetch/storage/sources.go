package storage

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Sources maps URL schemes ("s3", "file") to the Source that reads them.
// It is immutable once made: safe for concurrent use.
type Sources struct {
	byScheme map[string]Source
}

// NewSources returns the Sources for m, keyed by scheme without "://"
// (e.g. {"s3": s3src, "file": NewFileSource()}). m is copied.
func NewSources(m map[string]Source) *Sources {
	return &Sources{byScheme: maps.Clone(m)}
}

// Schemes returns the known schemes, sorted.
func (s *Sources) Schemes() []string { return slices.Sorted(maps.Keys(s.byScheme)) }

// For returns the Source for url's scheme. A bare path or an unknown scheme
// is ErrBadURL naming it.
func (s *Sources) For(url string) (Source, error) {
	scheme, _, ok := strings.Cut(url, "://")
	if !ok || scheme == "" {
		return nil, &Error{Op: "resolve", Object: url, Kind: ErrBadURL,
			Err: errors.New("not a URL: want scheme://…, like s3://bucket/prefix/ or file:///abs/dir/ (bare paths are not accepted)")}
	}
	src, ok := s.byScheme[scheme]
	if !ok {
		return nil, &Error{Op: "resolve", Object: url, Kind: ErrBadURL,
			Err: fmt.Errorf("unknown scheme %q (known: %s)", scheme, strings.Join(s.Schemes(), ", "))}
	}
	return src, nil
}
