package cache

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFS flushes the whole file system that d is on to its disk.
func syncFS(d *os.File) error { return unix.Syncfs(int(d.Fd())) }
