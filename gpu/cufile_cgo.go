//go:build cgo

package gpu

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/types.h>
#include <stdint.h>

// The few cuFile and CUDA runtime entry points Stoker calls, through
// pointers found with dlsym: nothing is linked at build time.
typedef struct { int err; int cu_err; } cufile_status;
typedef cufile_status (*driver_open_fn)(void);
typedef struct { int type; union { int fd; void *handle; } handle; const void *fs_ops; } cufile_descr;
typedef cufile_status (*handle_register_fn)(void **fh, cufile_descr *descr);
typedef void (*handle_deregister_fn)(void *fh);
typedef ssize_t (*read_fn)(void *fh, void *dev, size_t size, off_t file_off, off_t dev_off);
typedef int (*cuda_malloc_fn)(void **p, size_t n);
typedef int (*cuda_free_fn)(void *p);
typedef int (*cuda_memcpy_fn)(void *dst, const void *src, size_t n, int kind);

static void *lib_open(const char *name) { return dlopen(name, RTLD_NOW | RTLD_LOCAL); }
static void *lib_sym(void *h, const char *name) { return dlsym(h, name); }
static const char *lib_error(void) { const char *e = dlerror(); return e ? e : "unknown dlopen error"; }
static int call_driver_open(void *f) { cufile_status s = ((driver_open_fn)f)(); return s.err; }
static int call_handle_register(void *f, void **fh, int fd) {
	cufile_descr d = {0};
	d.type = 1; // CU_FILE_HANDLE_TYPE_OPAQUE_FD
	d.handle.fd = fd;
	cufile_status s = ((handle_register_fn)f)(fh, &d);
	return s.err;
}
static void call_handle_deregister(void *f, void *fh) { ((handle_deregister_fn)f)(fh); }
static ssize_t call_read(void *f, void *fh, uintptr_t dev, size_t n, off_t off) { return ((read_fn)f)(fh, (void *)dev, n, off, 0); }
static int call_cuda_malloc(void *f, void **p, size_t n) { return ((cuda_malloc_fn)f)(p, n); }
static int call_cuda_free(void *f, uintptr_t p) { return ((cuda_free_fn)f)((void *)p); }
static int call_cuda_to_device(void *f, uintptr_t dst, const void *src, size_t n) { return ((cuda_memcpy_fn)f)((void *)dst, src, n, 1); }
static int call_cuda_to_host(void *f, void *dst, uintptr_t src, size_t n) { return ((cuda_memcpy_fn)f)(dst, (const void *)src, n, 2); }
*/
import "C"

import (
	"fmt"
	"os"
	"sync"
	"unsafe"
)

// cuFileLib names the library dlopen looks for.
const cuFileLib = "libcufile.so.0"

// cudaRuntimeLibs are tried in order for cudaMalloc and cudaMemcpy.
var cudaRuntimeLibs = []string{"libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0"}

type cuFileSyms struct {
	register, deregister, read unsafe.Pointer
	malloc, free, memcpy       unsafe.Pointer // CUDA runtime; nil without it
}

var (
	cuFileOnce   sync.Once
	cuFileSymsV  *cuFileSyms
	cuFileReason string
)

// loadCuFile dlopens libcufile and opens its driver, once per process.
func loadCuFile() (*cuFileSyms, string) {
	cuFileOnce.Do(func() {
		name := C.CString(cuFileLib)
		defer C.free(unsafe.Pointer(name))
		h := C.lib_open(name)
		if h == nil {
			cuFileReason = C.GoString(C.lib_error())
			return
		}
		sym := func(lib unsafe.Pointer, s string) unsafe.Pointer {
			cs := C.CString(s)
			defer C.free(unsafe.Pointer(cs))
			return C.lib_sym(lib, cs)
		}
		open := sym(h, "cuFileDriverOpen")
		s := &cuFileSyms{register: sym(h, "cuFileHandleRegister"), deregister: sym(h, "cuFileHandleDeregister"), read: sym(h, "cuFileRead")}
		if open == nil || s.register == nil || s.deregister == nil || s.read == nil {
			cuFileReason = cuFileLib + " lacks the cuFile entry points"
			return
		}
		if rc := C.call_driver_open(open); rc != 0 {
			cuFileReason = fmt.Sprintf("cuFileDriverOpen failed with %d", int(rc))
			return
		}
		for _, lib := range cudaRuntimeLibs {
			ln := C.CString(lib)
			rt := C.lib_open(ln)
			C.free(unsafe.Pointer(ln))
			if rt != nil {
				s.malloc, s.free, s.memcpy = sym(rt, "cudaMalloc"), sym(rt, "cudaFree"), sym(rt, "cudaMemcpy")
				break
			}
		}
		cuFileSymsV = s
	})
	return cuFileSymsV, cuFileReason
}

// CuFileAvailable reports whether libcufile was found and its driver
// opened, and if not, why.
func CuFileAvailable() (bool, string) {
	s, why := loadCuFile()
	return s != nil, why
}

// cuFileRead reads n bytes at off of f straight into device memory dev.
func cuFileRead(f *os.File, off int64, dev DevicePtr, n int) error {
	s, why := loadCuFile()
	if s == nil {
		return fmt.Errorf("gpu: cufile read %s: %w (%s)", f.Name(), ErrNoCuFile, why)
	}
	var fh unsafe.Pointer
	if rc := C.call_handle_register(s.register, &fh, C.int(f.Fd())); rc != 0 {
		return fmt.Errorf("gpu: cufile register %s: error %d", f.Name(), int(rc))
	}
	defer C.call_handle_deregister(s.deregister, fh)
	got := C.call_read(s.read, fh, C.uintptr_t(dev), C.size_t(n), C.off_t(off))
	if int(got) != n {
		return fmt.Errorf("gpu: cufile read %s at %d: got %d of %d bytes", f.Name(), off, int64(got), n)
	}
	return nil
}

// deviceAlloc, deviceFree and the copies use the CUDA runtime.
func deviceAlloc(n int) (DevicePtr, error) {
	s, _ := loadCuFile()
	if s == nil || s.malloc == nil {
		return 0, fmt.Errorf("gpu: cudaMalloc: %w", ErrNoCUDA)
	}
	var p unsafe.Pointer
	if rc := C.call_cuda_malloc(s.malloc, &p, C.size_t(n)); rc != 0 {
		return 0, fmt.Errorf("gpu: cudaMalloc %d bytes: error %d", n, int(rc))
	}
	return DevicePtr(uintptr(p)), nil
}

func deviceFree(p DevicePtr) error {
	s, _ := loadCuFile()
	if s == nil || s.free == nil {
		return ErrNoCUDA
	}
	if rc := C.call_cuda_free(s.free, C.uintptr_t(p)); rc != 0 {
		return fmt.Errorf("gpu: cudaFree: error %d", int(rc))
	}
	return nil
}

// copyDevice copies between host and device: toDevice picks the direction.
func copyDevice(host []byte, dev DevicePtr, toDevice bool) error {
	s, _ := loadCuFile()
	if s == nil || s.memcpy == nil {
		return fmt.Errorf("gpu: cudaMemcpy: %w", ErrNoCUDA)
	}
	if len(host) == 0 {
		return nil
	}
	h := unsafe.Pointer(&host[0])
	var rc C.int
	if toDevice {
		rc = C.call_cuda_to_device(s.memcpy, C.uintptr_t(dev), h, C.size_t(len(host)))
	} else {
		rc = C.call_cuda_to_host(s.memcpy, h, C.uintptr_t(dev), C.size_t(len(host)))
	}
	if rc != 0 {
		return fmt.Errorf("gpu: cudaMemcpy %d bytes: error %d", len(host), int(rc))
	}
	return nil
}
