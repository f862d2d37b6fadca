package pipeline

// dtype is a tensor's element type, named as numpy names it.
type dtype uint8

const (
	dtNone dtype = iota // npy: keep the file's type
	dtBool
	dtUint8
	dtInt8
	dtUint16
	dtInt16
	dtUint32
	dtInt32
	dtUint64
	dtInt64
	dtFloat16
	dtFloat32
	dtFloat64
	dtString
)

var dtypeNames = [...]string{
	dtNone: "", dtBool: "bool", dtUint8: "uint8", dtInt8: "int8", dtUint16: "uint16", dtInt16: "int16",
	dtUint32: "uint32", dtInt32: "int32", dtUint64: "uint64", dtInt64: "int64",
	dtFloat16: "float16", dtFloat32: "float32", dtFloat64: "float64", dtString: "string",
}

var dtypeSizes = [...]int{
	dtBool: 1, dtUint8: 1, dtInt8: 1, dtUint16: 2, dtInt16: 2, dtUint32: 4, dtInt32: 4,
	dtUint64: 8, dtInt64: 8, dtFloat16: 2, dtFloat32: 4, dtFloat64: 8, dtString: 1,
}

func (d dtype) String() string { return dtypeNames[d] }

// size is the bytes of one element (a string's: one byte of its rows).
func (d dtype) size() int { return dtypeSizes[d] }

// isFloat says whether d is a floating-point type.
func (d dtype) isFloat() bool { return d == dtFloat16 || d == dtFloat32 || d == dtFloat64 }

// parseDType reads a dtype name; "" is dtNone.
func parseDType(s string) (dtype, bool) {
	for i, n := range dtypeNames {
		if n == s {
			return dtype(i), true
		}
	}
	return dtNone, false
}
