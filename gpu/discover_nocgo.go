//go:build !cgo

package gpu

// discover reports no NVML: go-nvml needs cgo to dlopen the library.
func discover(string) (Discovery, error) {
	return Discovery{Reason: "built without cgo"}, nil
}
