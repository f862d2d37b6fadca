package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is set at link time by the Makefile:
//
//	go build -ldflags "-X github.com/stoker-data/stoker/cmd/internal/cli.version=$(git describe --tags --always --dirty)"
//
// Empty, the module version (go install ...@v1.2.3) or the VCS revision
// the go command stamped is used.
var version string

// Version is the version of this build: the -X version above, else the
// module's version from the build information, else "devel".
func Version() string {
	return versionFrom(version, readBuildInfo())
}

func readBuildInfo() *debug.BuildInfo {
	bi, _ := debug.ReadBuildInfo()
	return bi
}

// versionFrom picks the version, with the commit and time when the build
// information has them: "v1.2.3", "devel (commit 0123abcd4567, 2026-01-02T03:04:05Z, modified)".
func versionFrom(linked string, bi *debug.BuildInfo) string {
	if linked != "" {
		return linked
	}
	v := "devel"
	if bi == nil {
		return v
	}
	if mv := bi.Main.Version; mv != "" && mv != "(devel)" {
		v = mv
	}
	var rev, at, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "modified"
			}
		}
	}
	if rev == "" {
		return v
	}
	var parts []string
	parts = append(parts, "commit "+rev[:min(len(rev), 12)])
	for _, p := range []string{at, modified} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return v + " (" + strings.Join(parts, ", ") + ")"
}

// VersionLine is what --version prints: "stoker v1.2.3 go1.26.8 linux/amd64".
func VersionLine(name string) string {
	return fmt.Sprintf("%s %s %s %s/%s\n", name, Version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
