package server

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/wds"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// bare is the baseline: a gRPC server that streams prebuilt messages of the
// same samples, with no cache, plan or batch assembly behind it.
type bare struct {
	msgs []*stokerv1.StreamBatchesResponse
}

var bareDesc = grpc.ServiceDesc{
	ServiceName: "bench.Bare",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{StreamName: "Stream", ServerStreams: true, Handler: func(srv any, st grpc.ServerStream) error {
		var req stokerv1.StreamBatchesRequest
		if err := st.RecvMsg(&req); err != nil {
			return err
		}
		for _, m := range srv.(*bare).msgs {
			if err := st.SendMsg(m); err != nil {
				return err
			}
		}
		return nil
	}}},
}

func startBare(b *testing.B, msgs []*stokerv1.StreamBatchesResponse) string {
	cfg := DefaultConfig()
	s := grpc.NewServer(grpc.MaxSendMsgSize(cfg.MaxMessageBytes), grpc.InitialWindowSize(cfg.WindowBytes), grpc.InitialConnWindowSize(cfg.WindowBytes))
	s.RegisterService(&bareDesc, &bare{msgs: msgs})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = s.Serve(lis) }()
	b.Cleanup(s.Stop)
	return lis.Addr().String()
}

// readBare reads the baseline stream and returns the payload bytes.
func readBare(b *testing.B, conn *grpc.ClientConn) int {
	st, err := conn.NewStream(context.Background(), &bareDesc.Streams[0], "/bench.Bare/Stream")
	if err != nil {
		b.Fatal(err)
	}
	if err := st.SendMsg(&stokerv1.StreamBatchesRequest{}); err != nil {
		b.Fatal(err)
	}
	if err := st.CloseSend(); err != nil {
		b.Fatal(err)
	}
	n := 0
	for {
		var m stokerv1.StreamBatchesResponse
		if err := st.RecvMsg(&m); errors.Is(err, io.EOF) {
			return n
		} else if err != nil {
			b.Fatal(err)
		}
		for _, s := range m.GetSamples() {
			for _, f := range s.GetFields() {
				n += len(f.GetData())
			}
		}
	}
}

// BenchmarkStreamCachedEpoch streams a cached epoch to a client over
// loopback TCP and, in the same iteration, the same bytes over a bare gRPC
// stream; it reports both rates and their ratio.
func BenchmarkStreamCachedEpoch(b *testing.B) {
	for _, tc := range []struct {
		name        string
		size, count int
		batch       int
	}{
		{"4KiB", 4 << 10, 16384, 256},
		{"1MiB", 1 << 20, 256, 16},
	} {
		b.Run(tc.name, func(b *testing.B) {
			syn := wds.Synthetic{Shards: 8, PerShard: tc.count / 8, SampleSize: tc.size, Seed: 1}
			h := newHarness(b, syn, nil)
			e := stoker.Epoch{URL: h.url, Seed: 1, BatchSize: tc.batch}
			// The baseline replays the very messages the server sends.
			var msgs []*stokerv1.StreamBatchesResponse
			st, err := stokerv1.NewLoaderClient(dialRaw(b, h.addr)).StreamBatches(context.Background(),
				&stokerv1.StreamBatchesRequest{Url: e.URL, Seed: e.Seed, BatchSize: uint32(e.BatchSize)})
			if err != nil {
				b.Fatal(err)
			}
			for {
				m, err := st.Recv()
				if errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					b.Fatal(err)
				}
				msgs = append(msgs, m)
			}
			conn := dialRaw(b, startBare(b, msgs))
			var stokerTime, bareTime time.Duration
			var bytes, samples int
			b.ResetTimer()
			for range b.N {
				t := time.Now()
				for bt, err := range h.client.Batches(context.Background(), e) {
					if err != nil {
						b.Fatal(err)
					}
					samples += len(bt.Samples)
					for _, s := range bt.Samples {
						for _, f := range s.GetFields() {
							bytes += len(f.GetData())
						}
					}
				}
				stokerTime += time.Since(t)
				t = time.Now()
				if n := readBare(b, conn); n != bytes/(samples/tc.count) {
					b.Fatalf("bare stream carried %d bytes, stoker %d", n, bytes/(samples/tc.count))
				}
				bareTime += time.Since(t)
			}
			b.StopTimer()
			gbps := float64(bytes) / stokerTime.Seconds() / 1e9
			bareGbps := float64(bytes) / bareTime.Seconds() / 1e9
			b.ReportMetric(gbps, "GB/s")
			b.ReportMetric(float64(samples)/stokerTime.Seconds(), "samples/s")
			b.ReportMetric(bareGbps, "bare-GB/s")
			b.ReportMetric(gbps/bareGbps, "ratio")
			b.Logf("%s: stoker %.3f GB/s, bare gRPC %.3f GB/s, ratio %.2f", tc.name, gbps, bareGbps, gbps/bareGbps)
		})
	}
}
