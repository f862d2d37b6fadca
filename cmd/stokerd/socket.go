package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// socketAuto is --unix's default: a socket named after the gRPC port in a
// folder of this user's under the temporary folder, which the server
// names to local clients (Stats.host.unix_socket) so they switch to it.
const socketAuto = "auto"

// unixSocket resolves --unix: "" is none, socketAuto the default path for
// the TCP listener's port. auto is true when the path was not given, so
// a failure to serve it is a warning, not fatal.
func unixSocket(flagValue string, tcp net.Addr) (path string, auto bool, err error) {
	if flagValue != socketAuto {
		return flagValue, false, nil
	}
	ta, ok := tcp.(*net.TCPAddr)
	if !ok {
		return "", true, fmt.Errorf("no TCP port to name the socket after (%v)", tcp)
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("stoker-%d", os.Getuid()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", true, err
	}
	if st, err := os.Lstat(dir); err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 || !ownedByMe(st) {
		return "", true, fmt.Errorf("%s is not a folder of this user's with mode 0700", dir)
	}
	return filepath.Join(dir, "stokerd-"+strconv.Itoa(ta.Port)+".sock"), true, nil
}

// listenUnix serves the unix socket: an explicit path that fails stops
// the server; the automatic one only warns (clients keep TCP).
func listenUnix(flagValue string, tcp net.Addr, log *slog.Logger) (net.Listener, string, error) {
	path, auto, err := unixSocket(flagValue, tcp)
	if err == nil && path != "" {
		_ = os.Remove(path)
		var l net.Listener
		if l, err = net.Listen("unix", path); err == nil {
			return l, path, nil
		}
	}
	if err != nil && auto {
		log.Warn("no unix socket: local clients use TCP", "err", err)
		return nil, "", nil
	}
	return nil, "", err
}
