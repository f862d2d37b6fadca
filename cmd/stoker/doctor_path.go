package main

import (
	"fmt"
	"net"
	"os"
	"strings"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// clientPath says which path a client on this host (the Python Client,
// StokerDataset) takes to the server at addr, whose Stats are st: the
// same choice as python/stoker/_local.py.
func clientPath(addr string, st *stokerv1.StatsResponse, env func(string) string) string {
	tier := "the memory tier is private, so field bytes are copied into the stream's region"
	if p := st.GetHost().GetMemoryRegion().GetSharedPath(); p != "" {
		tier = "fields in the memory tier are read in place (" + p + "), no copy"
	}
	local := func(sock, why string) string {
		return fmt.Sprintf("shared memory over %s (%s); %s", sock, why, tier)
	}
	if sock, ok := strings.CutPrefix(addr, "unix://"); ok {
		return local(sock, "the address is the socket")
	}
	if sock, ok := strings.CutPrefix(addr, "unix:"); ok {
		return local(sock, "the address is the socket")
	}
	if told := env("STOKER_SOCKET"); told != "" {
		sock := strings.TrimPrefix(strings.TrimPrefix(told, "unix://"), "unix:")
		if why := socketProblem(sock); why != "" {
			return "gRPC over TCP: $STOKER_SOCKET " + why
		}
		return local(sock, "$STOKER_SOCKET")
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
		return "gRPC over TCP: " + addr + " is not on this host"
	}
	sock := st.GetHost().GetUnixSocket()
	if sock == "" {
		return "gRPC over TCP: the server serves no unix socket (stokerd --unix)"
	}
	if why := socketProblem(sock); why != "" {
		return "gRPC over TCP: the server's socket " + why
	}
	return local(sock, "the server named it")
}

// socketProblem says why path is not a socket this user can connect to,
// or "".
func socketProblem(path string) string {
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return err.Error()
	case st.Mode()&os.ModeSocket == 0:
		return path + " is not a socket"
	}
	if f, err := os.OpenFile(path, os.O_RDWR, 0); err == nil { // a socket cannot be opened: only the permission matters
		f.Close()
	} else if os.IsPermission(err) {
		return path + ": this user may not connect to it"
	}
	return ""
}
