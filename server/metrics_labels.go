package server

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// otherDataset is the label of every dataset past the bounded set.
const otherDataset = "other"

// maxDatasetLabel is the longest dataset label: a longer URL keeps its
// start and a hash of the whole.
const maxDatasetLabel = 120

// datasetLabels gives per-dataset metrics a bounded label set: at most max
// datasets have a label of their own (their URL) at once; every other is
// "other". A dataset keeps its label while it has open streams and for
// idle after its last one closed; only then may another dataset take the
// slot, and the old label's series are dropped (forget), so a long-lived
// server that sees thousands of datasets still exports at most max+1
// series per metric. Safe for concurrent use.
type datasetLabels struct {
	max    int
	idle   time.Duration
	now    func() time.Time
	forget func(label string) // drops a recycled label's series

	mu    sync.Mutex // guards slots
	slots map[string]*labelSlot
}

// labelSlot is one dataset holding a label.
type labelSlot struct {
	label  string
	active int       // open streams
	last   time.Time // when the last stream closed (or the slot was taken)
}

func newDatasetLabels(max int, idle time.Duration, forget func(string)) *datasetLabels {
	return &datasetLabels{max: max, idle: idle, now: time.Now, forget: forget, slots: map[string]*labelSlot{}}
}

// acquire returns url's label for a stream that opens now; release it
// with release(url) when the stream closes.
func (d *datasetLabels) acquire(url string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.slotFor(url); s != nil {
		s.active++
		return s.label
	}
	return otherDataset
}

// release ends a stream that acquire counted.
func (d *datasetLabels) release(url string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.slots[url]; s != nil && s.active > 0 {
		s.active--
		if s.active == 0 {
			s.last = d.now()
		}
	}
}

// label returns url's label without counting a stream: its own when it
// holds a slot (taking a free one if there is one), else "other".
func (d *datasetLabels) label(url string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.slotFor(url); s != nil {
		s.last = d.now()
		return s.label
	}
	return otherDataset
}

// slotFor returns url's slot, taking a free or long-idle one; nil when
// every slot is held. Call with mu held.
func (d *datasetLabels) slotFor(url string) *labelSlot {
	if s := d.slots[url]; s != nil {
		return s
	}
	if len(d.slots) >= d.max {
		var oldest string
		for u, s := range d.slots {
			if s.active == 0 && d.now().Sub(s.last) >= d.idle && (oldest == "" || s.last.Before(d.slots[oldest].last)) {
				oldest = u
			}
		}
		if oldest == "" {
			return nil
		}
		label := d.slots[oldest].label
		delete(d.slots, oldest)
		if d.forget != nil {
			d.forget(label)
		}
	}
	s := &labelSlot{label: datasetLabel(url), last: d.now()}
	d.slots[url] = s
	return s
}

// datasetLabel is the label of a dataset URL: the URL, or for a long one
// its start and a short hash of the whole.
func datasetLabel(url string) string {
	if url == otherDataset {
		return "other-dataset" // never mistaken for the overflow label
	}
	// A label must be UTF-8 (Prometheus refuses others), and a URL from
	// the wire may not be.
	clean := strings.ToValidUTF8(url, "\uFFFD")
	if len(clean) <= maxDatasetLabel && clean == url {
		return url
	}
	cut := min(len(clean), maxDatasetLabel-14)
	for cut > 0 && cut < len(clean) && !utf8.RuneStart(clean[cut]) {
		cut--
	}
	sum := sha256.Sum256([]byte(url))
	return clean[:cut] + "…" + hex.EncodeToString(sum[:5])
}
