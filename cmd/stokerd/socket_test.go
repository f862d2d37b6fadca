package main

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestUnixSocketAuto(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	tcp := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7470}
	path, auto, err := unixSocket(socketAuto, tcp)
	if err != nil || !auto {
		t.Fatalf("auto: %q %v %v", path, auto, err)
	}
	if want := filepath.Join(os.TempDir(), "stoker-"+strconv.Itoa(os.Getuid()), "stokerd-7470.sock"); path != want {
		t.Fatalf("auto socket %q, want %q", path, want)
	}
	if st, err := os.Stat(filepath.Dir(path)); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("folder: %v %v", st, err)
	}
	if p, auto, err := unixSocket("/run/x.sock", tcp); p != "/run/x.sock" || auto || err != nil {
		t.Fatalf("explicit: %q %v %v", p, auto, err)
	}
	if p, _, err := unixSocket("", tcp); p != "" || err != nil {
		t.Fatalf("off: %q %v", p, err)
	}
	// A folder others may write to is refused, and the automatic socket
	// then only warns.
	if err := os.Chmod(filepath.Dir(path), 0o777); err != nil {
		t.Fatal(err)
	}
	if _, _, err := unixSocket(socketAuto, tcp); err == nil || !strings.Contains(err.Error(), "0700") {
		t.Fatalf("an open folder: %v", err)
	}
	l, p, err := listenUnix(socketAuto, tcp, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if l != nil || p != "" || err != nil {
		t.Fatalf("listenUnix on an open folder: %v %q %v", l, p, err)
	}
}
