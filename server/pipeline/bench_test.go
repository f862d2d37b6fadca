package pipeline

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user and system time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkImagenetSample makes ImageNet's training sample (random-resized
// crop to 224, flip, normalize, CHW float32) from the test photos on one
// worker, and in the same iteration the same work done the plain way: a
// whole decode, then the Go resampler and the Go writer. It reports the
// CPU per sample of each and their ratio (on a shared machine CPU time is
// steadier than wall time).
func BenchmarkImagenetSample(b *testing.B) {
	p := compile(b, imagenet(1))
	in := photos(b, 0, 1, 2, 5, 6, 7, 10, 11, 12, 15, 16, 17) // the JPEGs
	var filtered []Input
	for _, x := range in {
		if x.Fields[0].Name == "jpg" {
			filtered = append(filtered, x)
		}
	}
	pool := newTestPool(b, Config{Workers: 1})
	batch, err := p.Prepare(0, filtered)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, batch.Size())
	img := p.outputs[0].img
	w := &worker{pool: pool}
	var fast, plain time.Duration
	n := 0
	b.ResetTimer()
	for range b.N {
		c := cpuTime()
		if err := pool.Run(context.Background(), batch, dst); err != nil {
			b.Fatal(err)
		}
		fast += cpuTime() - c
		c = cpuTime()
		for i, x := range filtered {
			data := x.Fields[0].Data
			wd, ht, _, err := jpegHeader(data)
			if err != nil {
				b.Fatal(err)
			}
			g, _ := img.geometry(wd, ht, sampleKey{1, 0, uint64(x.Position)})
			full, err := decodeJPEG(data, 1, 3, 0, 0, wd, ht, w.dec, 1<<30)
			if err != nil {
				b.Fatal(err)
			}
			w.dec = full.pix
			src := rows{pix: full.pix[g.y.lo*full.stride+g.x.lo*3:], stride: full.stride, ch: 3}
			var cx, cy coeffs
			cx.compute(axis{hi: g.x.hi - g.x.lo, scale: g.x.scale, n: g.x.n})
			cy.compute(axis{hi: g.y.hi - g.y.lo, scale: g.y.scale, n: g.y.n})
			h := rows{pix: make([]byte, (g.y.hi-g.y.lo)*g.x.n*3), stride: g.x.n * 3, ch: 3}
			resampleH(h, src, g.y.hi-g.y.lo, &cx, 0)
			v := rows{pix: make([]byte, g.y.n*g.x.n*3), stride: g.x.n * 3, ch: 3}
			resampleV(v, h, g.x.n*3, &cy, 0, make([]int32, g.x.n*3))
			img.write(dst[i*img.outH*img.outW*12:], v, g.flip, dtFloat32, img.luts)
		}
		plain += cpuTime() - c
		n += len(filtered)
	}
	b.ReportMetric(float64(fast.Microseconds())/float64(n)/1000, "cpu-ms/sample")
	b.ReportMetric(float64(plain.Microseconds())/float64(n)/1000, "plain-cpu-ms/sample")
	b.ReportMetric(float64(plain)/float64(fast), "x")
	b.Logf("decoder %s: %s", JPEGDecoder, fmt.Sprint(n, " samples"))
}
