package s3

import (
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// lmVersion starts the version token of an object stored without an ETag
// (some S3-compatible stores send none): "lm:<Last-Modified, Unix
// seconds>-<size>". Seconds, because HEAD and GET carry Last-Modified as an
// HTTP date, which has no finer grain, while List has milliseconds. An S3
// ETag is a quoted string, so it never starts with "lm:".
const lmVersion = "lm:"

// s3Version returns an object's version token: its ETag, or, when the
// store sent none, one made of its Last-Modified time and size; "" when it
// sent neither (its reads are then not pinned to a version).
func s3Version(etag *string, lastModified *time.Time, size int64) string {
	if e := aws.ToString(etag); e != "" {
		return e
	}
	return lmToken(lastModified, size)
}

// lmToken is the "lm:" version of an object modified at lastModified, of
// size bytes; "" without a time.
func lmToken(lastModified *time.Time, size int64) string {
	if lastModified == nil || lastModified.IsZero() {
		return ""
	}
	return fmt.Sprintf("%s%d-%d", lmVersion, lastModified.Unix(), size)
}

// isLMVersion reports whether v is an "lm:" token, which S3 cannot check
// with If-Match: ReadAt compares it with each response's instead.
func isLMVersion(v string) bool { return strings.HasPrefix(v, lmVersion) }
