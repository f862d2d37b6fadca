package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/clients/stoker"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

const adversaryToken = "adversarial-test-token"

// thousandStreams opens 1000 streams on one new connection at once, each
// read to its first message, then closes them; it counts the streams
// accepted, those refused at the per-connection limit, and other errors.
func thousandStreams(t *testing.T, addr string, ctx context.Context, url string) (accepted, exhausted int, other []error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex // guards the counts
	var wg sync.WaitGroup
	for range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := stokerv1.NewLoaderClient(conn).StreamBatches(ctx, &stokerv1.StreamBatchesRequest{Url: url, BatchSize: 1, Seed: 9})
			if err == nil {
				_, err = st.Recv()
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				accepted++
			case status.Code(err) == codes.ResourceExhausted && strings.Contains(err.Error(), "--max-streams-per-conn"):
				exhausted++
			default:
				other = append(other, err)
			}
		}()
	}
	wg.Wait()
	return accepted, exhausted, other
}

// promValue is the value of an unlabelled metric on a /metrics page.
func promValue(t *testing.T, url, token, name string) int64 {
	t.Helper()
	code, body := httpDo(t, "GET", url, token, "", "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	for line := range strings.Lines(body) {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return int64(v)
		}
	}
	t.Fatalf("no %s on %s", name, url)
	return 0
}

// vmRSS is a line of a process's /proc status (VmRSS, VmHWM) in bytes.
func vmRSS(t *testing.T, pid int, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc status", field)
	return 0
}

// A real stokerd on versitygw, with a token file and default limits,
// attacked while a trainer reads an epoch: the epoch completes exactly,
// and each attack is refused without taking the server down.
func TestAdversarialClients(t *testing.T) {
	s3, _, want := startS3Dataset(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokenFile, []byte(adversaryToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A local file the server could read, and a folder it is not allowed.
	secret := filepath.Join(dir, "secret", "a.tar")
	if err := os.MkdirAll(filepath.Dir(secret), 0o755); err != nil {
		t.Fatal(err)
	}
	shards, _ := testDataset(t)
	if err := os.WriteFile(secret, shards[0].data, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startStokerd(t, s3.Env(), t.TempDir(), "--auth-token-file", tokenFile)
	e := &env{s3: s3, srv: srv, want: want, url: "s3://" + bucket + "/train/"}

	// The trainer: reads three batches, waits while the attacks run, then
	// reads the rest of the epoch, which must be exact.
	trainer := dialRetrying(t, srv.grpc, stoker.WithToken(adversaryToken))
	attacked := make(chan struct{})
	started := make(chan struct{})
	epochErr := make(chan error, 1)
	var samples []*stokerv1.Sample
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		batches := 0
		for b, err := range trainer.Batches(ctx, stoker.Epoch{URL: e.url, Seed: 5, BatchSize: 4}) {
			if err != nil {
				epochErr <- err
				return
			}
			samples = append(samples, b.Samples...)
			if batches++; batches == 3 {
				close(started)
				<-attacked
			}
		}
		epochErr <- nil
	}()
	select {
	case <-started:
	case err := <-epochErr:
		t.Fatalf("the trainer's epoch ended before the attacks: %v", err)
	}

	raw, err := grpc.NewClient(srv.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	authed := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+adversaryToken)
	loader, peer := stokerv1.NewLoaderClient(raw), stokerv1.NewPeerClient(raw)

	t.Run("remote file:// refused", func(t *testing.T) {
		var msgs []string
		for _, p := range []string{secret, filepath.Join(dir, "secret", "missing.tar"), "/etc/passwd", "/etc/shadow"} {
			_, err := loader.OpenDataset(authed, &stokerv1.OpenDatasetRequest{Url: "file://" + p})
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("OpenDataset file://%s: %v, want PermissionDenied", p, err)
				continue
			}
			msgs = append(msgs, strings.ReplaceAll(status.Convert(err).Message(), p, "PATH"))
		}
		for _, m := range msgs[1:] {
			if m != msgs[0] {
				t.Errorf("refusals differ by path (they must not tell a file that is there):\n  %s\n  %s", msgs[0], m)
			}
		}
		_, err := peer.Members(authed, &stokerv1.MembersRequest{Url: "file://" + secret})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("Members of a local file: %v, want PermissionDenied", err)
		}
		code, body := httpDo(t, "POST", "http://"+srv.web+"/v1/prefetch", adversaryToken, "application/json",
			`{"url": "file://`+secret+`", "epochs": [0]}`)
		if code != http.StatusForbidden || strings.Contains(body, "bytes") {
			t.Errorf("POST /v1/prefetch of a local file: %d %s, want 403", code, body)
		}
	})

	t.Run("huge cursor refused, server up", func(t *testing.T) {
		for _, cursor := range []string{"18446744073709551615", "9223372036854775808"} {
			cmd := exec.Command(filepath.Join(binDir, "stoker"), "read", "--server", srv.grpc, "--cursor", cursor, e.url)
			cmd.Env = append(os.Environ(), "STOKER_TOKEN="+adversaryToken)
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), "InvalidArgument") || !strings.Contains(string(out), "cursor.position") {
				t.Errorf("stoker read --cursor %s: %v\n%s", cursor, err, out)
			}
		}
		select {
		case <-srv.exited:
			t.Fatalf("stokerd exited:\n%s", srv.logs())
		default:
		}
		if _, err := loader.Stats(authed, &stokerv1.StatsRequest{}); err != nil {
			t.Fatalf("Stats after the cursors: %v", err)
		}
	})

	t.Run("1000 streams on one connection bounded", func(t *testing.T) {
		pid := srv.cmd.Process.Pid
		before := vmRSS(t, pid, "VmRSS")
		metric := func(name string) int64 { return promValue(t, "http://"+srv.web+"/metrics", adversaryToken, name) }
		held := func() int64 {
			return metric("go_memstats_heap_inuse_bytes") + metric("go_memstats_heap_idle_bytes") - metric("go_memstats_heap_released_bytes")
		}
		goroutines, heap := metric("go_goroutines"), held()
		for round := range 3 {
			accepted, exhausted, other := thousandStreams(t, srv.grpc, authed, e.url)
			if accepted != 64 || exhausted != 936 || len(other) > 0 {
				t.Errorf("round %d: %d accepted, %d ResourceExhausted naming --max-streams-per-conn, other errors %v; want 64 and 936", round, accepted, exhausted, other)
			}
			peak := vmRSS(t, pid, "VmHWM")
			// Closed streams give their places back, and their memory.
			waitFor(t, "the streams to close", func() bool {
				st, err := loader.Stats(authed, &stokerv1.StatsRequest{})
				return err == nil && st.GetActiveStreams() <= 1 // the trainer's
			})
			// Every stream's goroutines end with it.
			var g int64
			waitFor(t, "the streams' goroutines to end", func() bool {
				g = metric("go_goroutines")
				return g <= goroutines+16
			})
			// The heap's memory goes back to the system once the trimmer
			// runs (at most every 10 s): what the Go heap holds from the
			// system (in use, and idle but not released) comes back to
			// where it was. The test's stokerd is built with -race, whose
			// shadow memory stays resident after the heap lets go of its
			// pages, so RSS itself is bounded more loosely.
			var after, heapAfter int64
			waitFor(t, "stokerd's heap to come back", func() bool {
				heapAfter = held()
				return heapAfter <= heap+16<<20
			})
			after = vmRSS(t, pid, "VmRSS")
			if after > before+512<<20 {
				t.Errorf("stokerd's RSS after the streams closed: %d MiB, %d MiB before", after>>20, before>>20)
			}
			t.Logf("round %d: %d streams accepted, %d refused; stokerd RSS %d MiB before, peak %d MiB, %d MiB after they closed (heap held %d MiB, %d MiB before; %d goroutines, %d before)",
				round, accepted, exhausted, before>>20, peak>>20, after>>20, heapAfter>>20, heap>>20, g, goroutines)
			if peak-before > 512<<20 {
				t.Errorf("stokerd's peak grew by %d MiB with the streams open", (peak-before)>>20)
			}
		}
		if err := stokerErr(authed, loader, e.url); err != nil {
			t.Errorf("a stream after the others closed: %v", err)
		}
	})

	t.Run("token auth on gRPC and HTTP", func(t *testing.T) {
		for what, ctx := range map[string]context.Context{
			"no token":      context.Background(),
			"a wrong token": metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer nope"),
		} {
			if _, err := loader.Stats(ctx, &stokerv1.StatsRequest{}); status.Code(err) != codes.Unauthenticated {
				t.Errorf("Stats with %s: %v", what, err)
			}
			if err := stokerErr(ctx, loader, e.url); status.Code(err) != codes.Unauthenticated {
				t.Errorf("StreamBatches with %s: %v", what, err)
			}
			if _, err := peer.Members(ctx, &stokerv1.MembersRequest{}); status.Code(err) != codes.Unauthenticated {
				t.Errorf("Members with %s: %v", what, err)
			}
		}
		base := "http://" + srv.web
		for _, tc := range []struct {
			method, path, token, ctype string
			want                       int
		}{
			{"GET", "/healthz", "", "", 200},
			{"GET", "/metrics", "", "", 401},
			{"GET", "/metrics", "nope", "", 401},
			{"POST", "/v1/prefetch", "", "application/json", 401},
			{"POST", "/v1/prefetch", adversaryToken, "text/plain", 415},
			{"GET", "/v1/prefetch/x", "", "", 401},
		} {
			if code, body := httpDo(t, tc.method, base+tc.path, tc.token, tc.ctype, `{"url": "`+e.url+`", "epochs": [0]}`); code != tc.want {
				t.Errorf("%s %s token %q %s: %d %s, want %d", tc.method, tc.path, tc.token, tc.ctype, code, body, tc.want)
			}
		}
		_, metrics := httpDo(t, "GET", base+"/metrics", adversaryToken, "", "")
		for _, m := range []string{`stoker_auth_failures_total{api="grpc"}`, `stoker_auth_failures_total{api="http"}`, `stoker_limit_rejections_total{limit="streams_per_conn"} 2808`} {
			if !strings.Contains(metrics, m) {
				t.Errorf("/metrics lacks %s", m)
			}
		}
	})

	close(attacked)
	if err := <-epochErr; err != nil {
		t.Fatalf("the trainer's epoch beside the attacks: %v", err)
	}
	e.checkEpoch(t, samples)
	select {
	case <-srv.exited:
		t.Fatalf("stokerd exited:\n%s", srv.logs())
	default:
	}
}

// stokerErr opens a stream and returns the error of its first message.
func stokerErr(ctx context.Context, api stokerv1.LoaderClient, url string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := api.StreamBatches(ctx, &stokerv1.StreamBatchesRequest{Url: url, BatchSize: 4})
	if err != nil {
		return err
	}
	_, err = st.Recv()
	return err
}

// httpDo makes a request with an optional bearer token and content type.
func httpDo(t *testing.T, method, url, token, ctype, body string) (int, string) {
	t.Helper()
	return httpDoWith(t, http.DefaultClient, method, url, token, ctype, body)
}

func httpDoWith(t *testing.T, c *http.Client, method, url, token, ctype, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if method == "POST" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	r, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b)
}

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // poll interval, not a wait for an outcome
	}
}
