package main

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

func TestClientPath(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	named := &stokerv1.StatsResponse{Host: &stokerv1.HostInfo{UnixSocket: sock,
		MemoryRegion: &stokerv1.MemoryRegion{SharedPath: "/dev/shm/stoker-1-tier.shm"}}}
	none := &stokerv1.StatsResponse{Host: &stokerv1.HostInfo{}}
	noEnv := func(string) string { return "" }
	for _, tc := range []struct {
		addr string
		st   *stokerv1.StatsResponse
		env  func(string) string
		want string
	}{
		{"127.0.0.1:7470", named, noEnv, "shared memory over " + sock + " (the server named it); fields in the memory tier are read in place"},
		{"localhost:7470", none, noEnv, "gRPC over TCP: the server serves no unix socket"},
		{"10.1.2.3:7470", named, noEnv, "gRPC over TCP: 10.1.2.3:7470 is not on this host"},
		{"unix://" + sock, none, noEnv, "shared memory over " + sock + " (the address is the socket); the memory tier is private"},
		{"127.0.0.1:7470", named, func(string) string { return "/nowhere.sock" }, "gRPC over TCP: $STOKER_SOCKET stat /nowhere.sock"},
		{"127.0.0.1:7470", none, func(string) string { return "unix://" + sock }, "shared memory over " + sock + " ($STOKER_SOCKET)"},
		{"127.0.0.1:7470", &stokerv1.StatsResponse{Host: &stokerv1.HostInfo{UnixSocket: "/gone.sock"}}, noEnv, "gRPC over TCP: the server's socket stat /gone.sock"},
	} {
		if got := clientPath(tc.addr, tc.st, tc.env); !strings.HasPrefix(got, tc.want) {
			t.Errorf("clientPath(%s) = %q, want it to start %q", tc.addr, got, tc.want)
		}
	}
}
