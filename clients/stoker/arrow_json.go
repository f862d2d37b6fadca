package stoker

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// RowValues returns row i of rec as pyarrow's RecordBatch.to_pylist()
// gives it, in a form encoding/json writes as Python's json module would:
// integers and floats as numbers, strings, bytes as []byte (base64 in
// JSON), lists as slices, structs as maps, maps as lists of [key, value]
// pairs, dictionary values decoded, dates and timestamps as ISO 8601
// strings (date.isoformat(), datetime.isoformat()), decimals as strings,
// nulls as nil, and NaN and infinities as the strings "NaN", "Infinity",
// "-Infinity".
func RowValues(rec arrow.RecordBatch, i int) map[string]any {
	row := make(map[string]any, rec.NumCols())
	for j, f := range rec.Schema().Fields() {
		row[f.Name] = Value(rec.Column(j), i)
	}
	return row
}

// Value returns element i of a as RowValues does.
func Value(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Boolean:
		return a.Value(i)
	case *array.Int8:
		return int64(a.Value(i))
	case *array.Int16:
		return int64(a.Value(i))
	case *array.Int32:
		return int64(a.Value(i))
	case *array.Int64:
		return a.Value(i)
	case *array.Uint8:
		return uint64(a.Value(i))
	case *array.Uint16:
		return uint64(a.Value(i))
	case *array.Uint32:
		return uint64(a.Value(i))
	case *array.Uint64:
		return a.Value(i)
	case *array.Float16:
		return float(float64(a.Value(i).Float32()))
	case *array.Float32:
		return float(float64(a.Value(i)))
	case *array.Float64:
		return float(a.Value(i))
	case *array.String:
		return a.Value(i)
	case *array.LargeString:
		return a.Value(i)
	case *array.StringView:
		return a.Value(i)
	case *array.Binary:
		return a.Value(i)
	case *array.LargeBinary:
		return a.Value(i)
	case *array.BinaryView:
		return a.Value(i)
	case *array.FixedSizeBinary:
		return a.Value(i)
	case *array.Date32:
		return a.Value(i).ToTime().Format(time.DateOnly)
	case *array.Date64:
		return a.Value(i).ToTime().Format(time.DateOnly)
	case *array.Timestamp:
		return timestamp(a, i)
	case *array.Decimal128:
		t := a.DataType().(*arrow.Decimal128Type)
		return a.Value(i).ToString(t.Scale)
	case *array.Dictionary:
		return Value(a.Dictionary(), a.GetValueIndex(i))
	case *array.Map:
		start, end := a.ValueOffsets(i)
		keys, items := a.Keys(), a.Items()
		out := make([]any, 0, end-start)
		for k := start; k < end; k++ {
			out = append(out, []any{Value(keys, int(k)), Value(items, int(k))})
		}
		return out
	case array.ListLike:
		start, end := a.ValueOffsets(i)
		vals := a.ListValues()
		out := make([]any, 0, end-start)
		for k := start; k < end; k++ {
			out = append(out, Value(vals, int(k)))
		}
		return out
	case *array.Struct:
		st := a.DataType().(*arrow.StructType)
		out := make(map[string]any, a.NumField())
		for k := range a.NumField() {
			out[st.Field(k).Name] = Value(a.Field(k), i)
		}
		return out
	}
	return a.ValueStr(i)
}

// float keeps finite floats as numbers and names the others as Python
// prints them (encoding/json refuses them).
func float(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return json.Number(fmt.Sprint(f))
}

// timestamp formats like Python's datetime.isoformat(): microseconds when
// not zero, "+00:00" when the type has a time zone (pyarrow converts to it).
func timestamp(a *array.Timestamp, i int) string {
	t := a.DataType().(*arrow.TimestampType)
	tm := a.Value(i).ToTime(t.Unit)
	layout := "2006-01-02T15:04:05"
	if tm.Nanosecond()/1000 != 0 {
		layout += ".000000"
	}
	if t.TimeZone != "" {
		if loc, err := time.LoadLocation(t.TimeZone); err == nil {
			tm = tm.In(loc)
		}
		layout += "-07:00"
	}
	return tm.Format(layout)
}
