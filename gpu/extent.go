package gpu

import (
	"errors"
	"fmt"
	"os"
)

// ErrNoCuFile means libcufile is absent or its driver did not open;
// ErrNoCUDA that the CUDA runtime (libcudart) is absent.
var (
	ErrNoCuFile = errors.New("cufile not available")
	ErrNoCUDA   = errors.New("cuda runtime not available")
)

// DevicePtr is an address in GPU memory.
type DevicePtr uintptr

// Extent is a byte range of a local file: what the disk tier hands a
// local client for GPUDirect Storage.
type Extent struct {
	Path   string
	Offset int64
	Length int64
}

// Path names how an extent travelled.
type Path string

const (
	PathCuFile Path = "cufile" // NVMe → GPU by cuFile (GPUDirect Storage)
	PathPinned Path = "pinned" // NVMe → pinned host memory → GPU by DMA
)

// ReadToDevice reads e into device memory dev (at least e.Length bytes):
// by cuFile when it is present, else through the pinned host buffer
// staging (which must hold e.Length bytes) and cudaMemcpy. It returns the
// path taken; a cuFile failure falls back to the pinned path.
func ReadToDevice(e Extent, dev DevicePtr, staging *Pinned) (Path, error) {
	f, err := os.Open(e.Path)
	if err != nil {
		return "", fmt.Errorf("gpu: read extent: %w", err)
	}
	defer f.Close()
	if ok, _ := CuFileAvailable(); ok {
		if err := cuFileRead(f, e.Offset, dev, int(e.Length)); err == nil {
			return PathCuFile, nil
		}
	}
	buf, err := ReadPinned(f, e, staging)
	if err != nil {
		return PathPinned, err
	}
	return PathPinned, copyDevice(buf, dev, true)
}

// ReadPinned reads e into the start of the pinned buffer and returns the
// bytes read: the fallback path, and all of it on a host without CUDA.
func ReadPinned(f *os.File, e Extent, staging *Pinned) ([]byte, error) {
	if staging == nil || int64(len(staging.Bytes())) < e.Length {
		return nil, fmt.Errorf("gpu: read extent %s: staging buffer smaller than %d bytes", e.Path, e.Length)
	}
	buf := staging.Bytes()[:e.Length]
	if _, err := f.ReadAt(buf, e.Offset); err != nil {
		return nil, fmt.Errorf("gpu: read extent %s at %d+%d: %w", e.Path, e.Offset, e.Length, err)
	}
	return buf, nil
}

// AllocDevice allocates n bytes of GPU memory (CUDA runtime needed).
func AllocDevice(n int) (DevicePtr, error) { return deviceAlloc(n) }

// FreeDevice frees memory from AllocDevice.
func FreeDevice(p DevicePtr) error { return deviceFree(p) }

// CopyFromDevice copies len(dst) bytes at p to dst.
func CopyFromDevice(dst []byte, p DevicePtr) error { return copyDevice(dst, p, false) }

// CopyToDevice copies src to p.
func CopyToDevice(src []byte, p DevicePtr) error { return copyDevice(src, p, true) }
