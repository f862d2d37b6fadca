package deploy

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, …
	args string
	line int
}

// stage is a FROM and what follows it.
type stage struct {
	image, name string
	body        []instruction
}

type dockerfile struct{ stages []stage }

// parseDockerfile reads the instructions of path (comments, parser
// directives and blank lines dropped).
func parseDockerfile(path string) (*dockerfile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	df := &dockerfile{}
	sc := bufio.NewScanner(f)
	var cur strings.Builder
	n, start := 0, 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			st := stage{image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			df.stages = append(df.stages, st)
			continue
		}
		if len(df.stages) > 0 {
			df.stages[len(df.stages)-1].body = append(df.stages[len(df.stages)-1].body, in)
		}
	}
	return df, sc.Err()
}

func (d *dockerfile) stage(name string) (*stage, bool) {
	for i := range d.stages {
		if d.stages[i].name == name {
			return &d.stages[i], true
		}
	}
	return nil, false
}

// goBuild returns the environment and arguments of the go build that
// stage name runs.
func (d *dockerfile) goBuild(name string) (env, args []string, err error) {
	st, ok := d.stage(name)
	if !ok {
		return nil, nil, fmt.Errorf("Dockerfile: no stage %q", name)
	}
	for _, in := range st.body {
		if in.cmd != "RUN" || !strings.Contains(in.args, "go build") {
			continue
		}
		words := shellWords(in.args)
		for len(words) > 0 && strings.HasPrefix(words[0], "--mount=") {
			words = words[1:]
		}
		for len(words) > 0 && regexp.MustCompile(`^[A-Z_]+=`).MatchString(words[0]) {
			env, words = append(env, words[0]), words[1:]
		}
		if len(words) < 2 || words[0] != "go" || words[1] != "build" {
			return nil, nil, fmt.Errorf("Dockerfile line %d: want [--mount…] [VAR=…] go build …, got %q", in.line, in.args)
		}
		return env, words[2:], nil
	}
	return nil, nil, fmt.Errorf("Dockerfile: stage %q runs no go build", name)
}

// shellWords splits s as a POSIX shell would split simple words with
// double quotes (enough for the Dockerfile's RUN lines).
func shellWords(s string) []string {
	var out []string
	var w strings.Builder
	in, quoted := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, in = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if in {
				out, in = append(out, w.String()), false
				w.Reset()
			}
		default:
			w.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, w.String())
	}
	return out
}

// There is no container daemon on the test machines, so the image is not
// built here: the Dockerfile is linted (hadolint, when installed) and
// checked: multi-stage, the default image a static distroless one run as
// a non-root user, its Go version that of go.mod, and its go build line,
// run here, makes static binaries.
func TestDockerfile(t *testing.T) {
	df, err := parseDockerfile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if len(df.stages) < 2 {
		t.Fatalf("%d stages: want a multi-stage build", len(df.stages))
	}
	final := df.stages[len(df.stages)-1]
	if !strings.HasPrefix(final.image, "gcr.io/distroless/static") {
		t.Errorf("default (last) stage FROM %s: want a static distroless base", final.image)
	}
	for _, st := range df.stages {
		if !strings.Contains(st.image, ":") || strings.HasSuffix(st.image, ":latest") {
			t.Errorf("FROM %s: pin the base image's tag", st.image)
		}
		if _, built := df.stage("build"); strings.HasPrefix(st.image, "golang:") && !built {
			t.Error("no build stage")
		}
	}
	var user, entry, cmd string
	for _, in := range final.body {
		switch in.cmd {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entry = in.args
		case "CMD":
			cmd = in.args
		case "COPY":
			if !strings.HasPrefix(in.args, "--from=build ") {
				t.Errorf("line %d: the final stage copies %q: want only the build stage's binaries", in.line, in.args)
			}
		case "RUN":
			t.Errorf("line %d: the final stage runs a command: a static distroless image has no shell", in.line)
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	if uid == "" || uid == "0" || uid == "root" {
		t.Errorf("USER %q: want a non-root user", user)
	}
	if entry != `["/usr/local/bin/stokerd"]` {
		t.Errorf("ENTRYPOINT %s: want stokerd", entry)
	}
	var cmdArgs []string
	if err := json.Unmarshal([]byte(cmd), &cmdArgs); err != nil {
		t.Fatalf("CMD %s: %v", cmd, err)
	}
	if bad := unknownFlags(cmdArgs, commandFlags(t, "stokerd")); len(bad) > 0 {
		t.Errorf("CMD passes flags stokerd does not have: %v", bad)
	}

	// The Go version: the build image's is go.mod's.
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	raw, _ := os.ReadFile("Dockerfile")
	goArg := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\S+)`).FindSubmatch(raw)
	if goLine == nil || goArg == nil || !strings.HasPrefix(string(goArg[1])+".", string(goLine[1])+".") {
		t.Errorf("Dockerfile GO_VERSION %q, go.mod go %q: want the same Go", goArg, goLine)
	}

	env, args, err := df.goBuild("build")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(env, " "), "CGO_ENABLED=0") || !strings.Contains(strings.Join(args, " "), "-trimpath") {
		t.Errorf("go build env %v args %v: want CGO_ENABLED=0 and -trimpath", env, args)
	}
	for _, name := range []string{"stokerd", "stoker"} {
		if err := checkStatic(filepath.Join(binDir, name)); err != nil {
			t.Errorf("%s built by the Dockerfile's go build: %v", name, err)
		}
	}

	t.Run("hadolint", func(t *testing.T) {
		bin := os.Getenv("HADOLINT")
		if bin == "" {
			bin, _ = exec.LookPath("hadolint")
		}
		if bin == "" {
			if os.Getenv("STOKER_REQUIRE_DEPLOY_TOOLS") == "1" {
				t.Fatal("hadolint is not installed (make deploy-tools installs it)")
			}
			t.Skip("hadolint is not installed (make deploy-tools installs it)")
		}
		if out, err := exec.Command(bin, "Dockerfile").CombinedOutput(); err != nil {
			t.Fatalf("hadolint Dockerfile: %v\n%s", err, out)
		}
		// hadolint is a real check: a Dockerfile with a known fault fails it.
		bad := filepath.Join(t.TempDir(), "Dockerfile")
		if err := os.WriteFile(bad, []byte("FROM debian\nRUN cd /tmp && apt-get install curl\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, bad).CombinedOutput(); err == nil {
			t.Fatalf("hadolint passed an unpinned image and apt-get without -y:\n%s", out)
		}
	})
}

// checkStatic fails for an ELF that needs a dynamic loader or libraries.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("has an ELF interpreter: dynamically linked")
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return err
	}
	if len(libs) > 0 {
		return fmt.Errorf("needs shared libraries %v", libs)
	}
	return nil
}
