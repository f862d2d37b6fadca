//go:build !cgo

package gpu

// discover reports no NVML: libnvidia-ml is reached through dlopen, which
// needs cgo.
func discover(string) (Discovery, error) {
	return Discovery{Reason: "built without cgo"}, nil
}
