package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/stoker-data/stoker"

// A rule says what the packages matching from (less those matching
// notFrom) may not import: the Stoker packages matching deny, less those
// matching allow. Patterns are module-relative; "x/..." is x and every
// package under it, "..." is every Stoker package. A rule whose from
// matches no package fails the test unless absentOK, so a rule cannot
// silently outlive a rename. tests: the rule holds for the package's tests'
// imports too, not only for what it ships.
type rule struct {
	from, notFrom []string
	deny, allow   []string
	tests         bool
	absentOK      bool
	why           string
}

// rules is the import direction of the tree: the wire format (proto) and
// the sample order (shuffle) at the bottom, then the host (gpu), storage
// and caching (prefetch), then serving (server) and the clients, and the
// commands on top.
var rules = []rule{
	{from: []string{"shuffle/..."}, deny: []string{"..."}, allow: []string{"shuffle/..."}, tests: true,
		why: "the sample order is pure: a plan from a seed and counts"},
	{from: []string{"proto/..."}, deny: []string{"..."}, allow: []string{"proto/..."}, tests: true,
		why: "generated wire types depend on nothing of ours"},
	{from: []string{"internal/layout"}, deny: []string{"..."}, tests: true,
		why: "this check reads the tree through go list, not by importing it"},
	{from: []string{"prefetch/storage/..."}, deny: []string{"..."}, allow: []string{"prefetch/storage/..."}, absentOK: true,
		why: "object storage drivers know nothing of datasets, caches or serving"},
	{from: []string{"prefetch/cache/..."}, deny: []string{"..."}, allow: []string{"prefetch/cache/...", "prefetch/storage/..."},
		why: "the cache tiers hold bytes of storage objects and know no format, dataset or reader"},
	{from: []string{"prefetch/dataset/..."}, deny: []string{"prefetch"}, absentOK: true,
		why: "datasets are resolved and counted below the shard reads and the prefetcher, which they reach through an interface"},
	{from: []string{"prefetch/wds/..."}, deny: []string{"..."}, allow: []string{"prefetch/wds/...", "prefetch/storage/...", "shuffle/..."}, tests: true, absentOK: true,
		why: "formats parse objects; they know no cache, dataset, reader or other format (prefetch/dataset's Layout joins them)"},
	{from: []string{"prefetch/columnar/..."}, deny: []string{"..."}, allow: []string{"prefetch/columnar/...", "prefetch/storage/...", "shuffle/..."}, tests: true, absentOK: true,
		why: "formats parse objects; they know no cache, dataset, reader or other format (prefetch/dataset's Layout joins them)"},
	{from: []string{"prefetch/..."}, deny: []string{"server/...", "clients/...", "cmd/..."}, tests: true,
		why: "storage and caching sit below serving and know no client"},
	{from: []string{"gpu/..."}, deny: []string{"..."}, allow: []string{"gpu/..."}, tests: true,
		why: "the host's memory and devices are below everything that uses them (no server, prefetch or client)"},
	{from: []string{"clients/..."}, deny: []string{"server/...", "prefetch/..."},
		why: "a client speaks the wire format only (its tests start a real server)"},
	{from: []string{"clients/tlsfiles/..."}, deny: []string{"..."}, allow: []string{"clients/tlsfiles/..."}, tests: true,
		why: "the TLS files serve stokerd, its cluster peers and the clients alike: a leaf"},
	{from: []string{"server/cluster/...", "server/pipeline/...", "server/shm/...", "server/status/..."}, deny: []string{"server", "clients/...", "cmd/..."}, tests: true,
		why: "the server's parts are below the server that wires them"},
	{from: []string{"server/pipeline/..."}, deny: []string{"..."}, allow: []string{"server/pipeline/...", "proto/..."}, tests: true,
		why: "decoding and augmenting samples needs only the request's pipeline message"},
	{from: []string{"server/status/..."}, deny: []string{"..."}, allow: []string{"server/status/..."}, tests: true,
		why: "the status page and its JSON types are a leaf the server fills"},
	{from: []string{"server/shm/..."}, deny: []string{"..."}, allow: []string{"server/shm/..."}, tests: true,
		why: "shared-memory regions and leases hold bytes and lease ids: no wire format, cache, sample or server"},
	{from: []string{"cmd/internal/..."}, deny: []string{"..."}, allow: []string{"cmd/internal/..."}, tests: true,
		why: "what the two commands share on their command lines knows nothing of what they run"},
	{from: []string{"..."}, notFrom: []string{"server/...", "clients/...", "cmd/...", "proto/..."}, deny: []string{"proto/..."},
		why: "the wire format is spoken at the edges: serving, the clients, the commands"},
}

// pkg is one package and what it imports, as go list tells.
type pkg struct {
	ImportPath   string
	Dir          string
	GoFiles      []string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// match reports whether the module-relative path rel matches pattern.
func match(pattern, rel string) bool {
	switch {
	case pattern == "...":
		return true
	case strings.HasSuffix(pattern, "/..."):
		base := strings.TrimSuffix(pattern, "/...")
		return rel == base || strings.HasPrefix(rel, base+"/")
	}
	return rel == pattern
}

func matchAny(patterns []string, rel string) bool {
	for _, p := range patterns {
		if match(p, rel) {
			return true
		}
	}
	return false
}

// relative returns path relative to the module, and whether it is in it.
func relative(path string) (string, bool) {
	if rel, ok := strings.CutPrefix(path, module+"/"); ok {
		return rel, true
	}
	return "", false
}

// check returns every import that breaks a rule, and every rule that
// matches no package though it should.
func check(rules []rule, pkgs []pkg) []string {
	var bad []string
	for i, r := range rules {
		matched := false
		for _, p := range pkgs {
			from, ok := relative(p.ImportPath)
			if !ok || !matchAny(r.from, from) || matchAny(r.notFrom, from) {
				continue
			}
			matched = true
			imports := map[string]string{}
			for _, imp := range p.Imports {
				imports[imp] = "imports"
			}
			if r.tests {
				for _, imp := range append(append([]string(nil), p.TestImports...), p.XTestImports...) {
					if imports[imp] == "" {
						imports[imp] = "tests import"
					}
				}
			}
			for imp, how := range imports {
				to, ok := relative(imp)
				if !ok || to == from || !matchAny(r.deny, to) || matchAny(r.allow, to) {
					continue
				}
				bad = append(bad, fmt.Sprintf("%s %s %s: %s", from, how, to, r.why))
			}
		}
		if !matched && !r.absentOK {
			bad = append(bad, fmt.Sprintf("rule %d (from %v) matches no package: renamed?", i, r.from))
		}
	}
	sort.Strings(bad)
	return bad
}

// list runs go list over the module.
func list(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Dir,GoFiles,Imports,TestImports,XTestImports", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []pkg
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p pkg
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func TestImportDirection(t *testing.T) {
	pkgs := list(t)
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages: not the whole module", len(pkgs))
	}
	for _, b := range check(rules, pkgs) {
		t.Error(b)
	}
	for _, b := range checkFiles(t, fileRules, pkgs) {
		t.Error(b)
	}
}

// A fileRule bounds the imports of some files of a package where the
// package as a whole imports more: stoker doctor plans from gpu's facts
// while stoker demo runs a server in process.
type fileRule struct {
	pkg, glob string
	deny      []string
	why       string
}

var fileRules = []fileRule{
	{pkg: "cmd/stoker", glob: "doctor*.go", deny: []string{"server/..."},
		why: "doctor plans from gpu's facts and reads a server through its Stats, never the server's code"},
}

// checkFiles returns every import of a file that breaks a file rule, and
// every rule that matches no file.
func checkFiles(t *testing.T, rules []fileRule, pkgs []pkg) []string {
	var bad []string
	for _, r := range rules {
		n := 0
		for _, p := range pkgs {
			if rel, _ := relative(p.ImportPath); rel != r.pkg {
				continue
			}
			for _, name := range p.GoFiles {
				if ok, _ := filepath.Match(r.glob, name); !ok {
					continue
				}
				n++
				f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(p.Dir, name), nil, parser.ImportsOnly)
				if err != nil {
					t.Fatal(err)
				}
				for _, imp := range f.Imports {
					to, ok := relative(strings.Trim(imp.Path.Value, `"`))
					if ok && matchAny(r.deny, to) {
						bad = append(bad, fmt.Sprintf("%s/%s imports %s: %s", r.pkg, name, to, r.why))
					}
				}
			}
		}
		if n == 0 {
			bad = append(bad, fmt.Sprintf("file rule %s/%s matches no file: renamed?", r.pkg, r.glob))
		}
	}
	return bad
}

// TestCheckFindsUpwardImports runs the check over a made-up tree that
// breaks rules, so a check that finds nothing is itself caught.
func TestCheckFindsUpwardImports(t *testing.T) {
	p := func(rel string, imports []string, tests ...string) pkg {
		q := pkg{ImportPath: module + "/" + rel}
		for _, i := range imports {
			q.Imports = append(q.Imports, module+"/"+i)
		}
		for _, i := range tests {
			q.XTestImports = append(q.XTestImports, module+"/"+i)
		}
		return q
	}
	pkgs := []pkg{
		p("shuffle", nil),
		p("proto/stoker/v1", nil),
		p("internal/layout", nil),
		p("prefetch", []string{"shuffle", "server"}),                      // upward
		p("prefetch/storage", []string{"prefetch/storage/s3", "shuffle"}), // shuffle: not a leaf
		p("prefetch/storage/s3", nil),
		p("prefetch/cache", []string{"prefetch/storage"}),
		p("prefetch/columnar", []string{"prefetch/storage", "shuffle"}),
		p("prefetch/wds", nil, "prefetch/columnar"),                // one format's test reaches for another
		p("gpu", nil, "clients/stoker"),                            // a test's import, ruled too
		p("clients/stoker", []string{"proto/stoker/v1"}, "server"), // a test may start a server
		p("clients/tlsfiles", nil),
		p("server", []string{"prefetch", "gpu", "proto/stoker/v1", "clients/tlsfiles"}),
		p("server/cluster", []string{"proto/stoker/v1", "prefetch"}),
		p("server/pipeline", []string{"proto/stoker/v1"}),
		p("server/shm", []string{"prefetch"}), // a leaf that reaches for samples
		p("server/status", nil, "server"),     // a test's upward import
		p("cmd/internal/cli", nil),
		p("cmd/stoker", []string{"server", "proto/stoker/v1"}),
		p("shuffle/x", []string{"proto/stoker/v1"}), // shuffle imports proto: two rules
	}
	why := func(from string) string {
		for _, r := range rules {
			if r.from[0] == from {
				return r.why
			}
		}
		t.Fatalf("no rule from %s", from)
		return ""
	}
	want := []string{
		"gpu tests import clients/stoker: " + why("gpu/..."),
		"prefetch imports server: " + why("prefetch/..."),
		"prefetch/storage imports shuffle: " + why("prefetch/storage/..."),
		"prefetch/wds tests import prefetch/columnar: " + why("prefetch/wds/..."),
		"server/shm imports prefetch: " + why("server/shm/..."),
		"server/status tests import server: " + why("server/cluster/..."),
		"server/status tests import server: " + why("server/status/..."),
		"shuffle/x imports proto/stoker/v1: " + why("shuffle/..."),
		"shuffle/x imports proto/stoker/v1: " + why("..."),
	}
	got := check(rules, pkgs)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("check found:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A renamed package leaves its rule matching nothing: said, unless the
	// rule allows it (prefetch/storage, not yet made).
	got = check(rules, pkgs[:1])
	if len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), "matches no package") {
		t.Errorf("rules over one package: %v, want the unmatched rules named", got)
	}
	for _, g := range got {
		if strings.Contains(g, "prefetch/storage") {
			t.Errorf("the absentOK rule was reported: %s", g)
		}
	}
}
