//go:build !cgo

package gpu

import (
	"fmt"
	"os"
)

// CuFileAvailable reports no cuFile: dlopen needs cgo.
func CuFileAvailable() (bool, string) { return false, "built without cgo" }

func cuFileRead(f *os.File, _ int64, _ DevicePtr, _ int) error {
	return fmt.Errorf("gpu: cufile read %s: %w (built without cgo)", f.Name(), ErrNoCuFile)
}

func deviceAlloc(int) (DevicePtr, error)       { return 0, ErrNoCUDA }
func deviceFree(DevicePtr) error               { return ErrNoCUDA }
func copyDevice([]byte, DevicePtr, bool) error { return ErrNoCUDA }
