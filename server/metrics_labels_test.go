package server

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// A slot goes to another dataset only once its dataset has had no stream
// for the idle time; the old label's series are forgotten then.
func TestDatasetLabelsRecycleIdleSlots(t *testing.T) {
	now := time.Unix(1000, 0)
	var forgotten []string
	d := newDatasetLabels(2, time.Minute, func(l string) { forgotten = append(forgotten, l) })
	d.now = func() time.Time { return now }

	if got := d.acquire("s3://b/a/"); got != "s3://b/a/" {
		t.Fatalf("a: %q", got)
	}
	if got := d.acquire("s3://b/b/"); got != "s3://b/b/" {
		t.Fatalf("b: %q", got)
	}
	if got := d.acquire("s3://b/c/"); got != otherDataset {
		t.Fatalf("c with both slots held: %q, want other", got)
	}
	d.release("s3://b/a/")
	now = now.Add(59 * time.Second)
	if got := d.label("s3://b/c/"); got != otherDataset {
		t.Fatalf("c before a's slot is idle long enough: %q, want other", got)
	}
	now = now.Add(time.Second)
	if got := d.label("s3://b/c/"); got != "s3://b/c/" {
		t.Fatalf("c after a idled a minute: %q, want its own label", got)
	}
	if strings.Join(forgotten, ",") != "s3://b/a/" {
		t.Fatalf("forgotten %q, want a's label", forgotten)
	}
	// b still streams: it keeps its slot however long; c had no stream
	// for an hour, so d takes c's.
	now = now.Add(time.Hour)
	if got := d.acquire("s3://b/d/"); got != "s3://b/d/" {
		t.Fatalf("d: %q, want its own label in c's idle slot", got)
	}
	if strings.Join(forgotten, ",") != "s3://b/a/,s3://b/c/" {
		t.Fatalf("forgotten %q, want a's then c's label", forgotten)
	}
	if got := d.label("s3://b/b/"); got != "s3://b/b/" {
		t.Fatalf("b lost its label while streaming: %q", got)
	}
}

// Labels are valid UTF-8 and bounded in length, whatever the URL; the
// overflow label's name is never a dataset's.
func TestDatasetLabelText(t *testing.T) {
	long := "s3://bucket/" + strings.Repeat("é", 200)
	for _, url := range []string{"s3://b/\xff\xfe/", long, long + "x", "other"} {
		l := datasetLabel(url)
		if !utf8.ValidString(l) || len(l) > maxDatasetLabel || l == otherDataset {
			t.Errorf("datasetLabel(%q) = %q (%d bytes): want valid UTF-8 of at most %d bytes, not %q", url, l, len(l), maxDatasetLabel, otherDataset)
		}
	}
	if datasetLabel(long) == datasetLabel(long+"x") {
		t.Error("two long URLs with the same start share a label")
	}
}
