package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// maxConfigBytes bounds a configuration file: it holds flags, not data.
const maxConfigBytes = 1 << 20

// ApplyConfigFile sets the flags of fs that neither the command line nor
// the environment set from the YAML (.yaml, .yml, .json) or TOML (.toml)
// file at path. Its keys are the flags' names (memory-cache: 8GiB, or
// memory_cache); a list flag takes a list or one value. An unknown key, a
// key of a flag in skip (the file cannot name itself), a table where a
// value belongs, or a value the flag refuses is an error naming the file
// and the key.
func ApplyConfigFile(fs *pflag.FlagSet, path string, skip ...string) error {
	values, err := readConfig(path)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the first error is the same every run
	for _, key := range keys {
		name := strings.ReplaceAll(key, "_", "-")
		f := fs.Lookup(name)
		if f == nil || f.Hidden || slices.Contains(skip, name) {
			return fmt.Errorf("config %s: unknown key %q: the keys are the flags' names (see --help)", path, key)
		}
		items, err := configStrings(values[key])
		if err != nil {
			return fmt.Errorf("config %s: %s: %w", path, key, err)
		}
		if f.Changed { // the command line or the environment set it
			continue
		}
		if err := set(fs, f, items); err != nil {
			return fmt.Errorf("config %s: %s: %w", path, key, err)
		}
	}
	return nil
}

// readConfig decodes the file by its extension.
func readConfig(path string) (map[string]any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if len(data) > maxConfigBytes {
		return nil, fmt.Errorf("config %s: over %d bytes", path, maxConfigBytes)
	}
	values := map[string]any{}
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".toml":
		if _, err := toml.Decode(string(data), &values); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	case ".yaml", ".yml", ".json":
		if err := yaml.Unmarshal(data, &values); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	default:
		return nil, fmt.Errorf("config %s: want a .yaml, .yml, .json or .toml file, got %q", path, ext)
	}
	return values, nil
}

// configStrings turns a decoded value into the strings a flag parses: a
// scalar is one, a list is one per item.
func configStrings(v any) ([]string, error) {
	if list, ok := v.([]any); ok {
		out := make([]string, 0, len(list))
		for i, item := range list {
			s, err := scalar(item)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			out = append(out, s)
		}
		return out, nil
	}
	s, err := scalar(v)
	if err != nil {
		return nil, err
	}
	return []string{s}, nil
}

func scalar(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool, int, int64, uint64, float64:
		return fmt.Sprint(x), nil
	case time.Duration:
		return x.String(), nil
	case nil:
		return "", errors.New("no value")
	}
	return "", fmt.Errorf("want a value or a list of values, got %T", v)
}
