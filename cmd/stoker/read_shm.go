package main

import (
	"fmt"
	"strings"

	"github.com/stoker-data/stoker/clients/stoker"
)

// dialRead connects `stoker read` to its server; with --shm the batches
// come through shared memory, which needs the server's unix socket.
func dialRead(addr string, shm bool, regionBytes int) (*stoker.Client, error) {
	if !shm {
		return stoker.Dial(addr)
	}
	if !strings.HasPrefix(addr, "unix://") && !strings.HasPrefix(addr, "unix:") {
		return nil, fmt.Errorf("read --shm: --server %q is not a unix socket (want unix:///path, the path of stokerd --unix)", addr)
	}
	return stoker.Dial(addr, stoker.WithSharedMemory(regionBytes))
}
