package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/stoker-data/stoker/prefetch/dataset"
	"github.com/stoker-data/stoker/prefetch/storage"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
	"github.com/stoker-data/stoker/shuffle"
)

// maxHintEpochs bounds the epochs of one hint: each is planned in full.
const maxHintEpochs = 1024

// Prefetch takes a scheduler's hint: it opens the dataset, lists the
// shards the epochs read in the order they are first needed (cut at the
// byte budget), and hands each owner its part.
func (l *loader) Prefetch(ctx context.Context, req *stokerv1.PrefetchRequest) (*stokerv1.PrefetchResponse, error) {
	switch {
	case req.GetUrl() == "":
		return nil, invalid("url", "is empty")
	case len(req.GetEpochs()) == 0 && !req.GetIndexOnly():
		return nil, invalid("epochs", "is empty")
	case len(req.GetEpochs()) > maxHintEpochs:
		return nil, invalid("epochs", fmt.Sprintf("%d epochs, over the limit of %d in one hint", len(req.GetEpochs()), maxHintEpochs))
	}
	deadline := unixMilli(req.GetDeadlineUnixMs())
	if !deadline.IsZero() && time.Until(deadline) <= 0 {
		return nil, invalid("deadline_unix_ms", "is in the past")
	}
	ds, err := l.s.open(ctx, req.GetUrl(), shuffle.Format(req.GetFormat()))
	if err != nil {
		return nil, err
	}
	if req.GetIndexOnly() {
		return l.s.hints.startIndex(ds, deadline), nil
	}
	base := shuffle.Settings{Seed: req.GetSeed(), Window: int(req.GetShuffleWindow()), NoShuffle: req.GetNoShuffle()}
	objs, err := l.s.hints.order(ds, base, req.GetEpochs(), req.GetBudgetBytes())
	if err != nil {
		return nil, toStatus(err)
	}
	id := newHintID()
	parts := l.s.hints.spreadHint(ctx, id, objs, deadline, false)
	l.s.hints.spread.Add(id, parts)
	resp := &stokerv1.PrefetchResponse{HintId: id, ShardsTotal: uint32(len(objs))}
	for _, o := range objs {
		resp.BytesTotal += uint64(o.Bytes())
	}
	l.s.log.Info("prefetch hint", "hint", id, "url", req.GetUrl(), "epochs", req.GetEpochs(), "shards", len(objs), "bytes", resp.BytesTotal, "nodes", len(parts))
	return resp, nil
}

// PrefetchStatus asks every node that took a part of the hint.
func (l *loader) PrefetchStatus(ctx context.Context, req *stokerv1.PrefetchStatusRequest) (*stokerv1.PrefetchStatusResponse, error) {
	parts, ok := l.s.hints.spread.Get(req.GetHintId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "hint %q: not received by this node (ask the node Prefetch was sent to)", req.GetHintId())
	}
	resp := &stokerv1.PrefetchStatusResponse{HintId: req.GetHintId(), Nodes: make([]*stokerv1.PrefetchProgress, len(parts)), Done: true}
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp.Nodes[i] = l.s.partProgress(ctx, p)
		}()
	}
	wg.Wait()
	for _, p := range resp.Nodes {
		resp.BytesDone += p.GetBytesDone()
		resp.BytesTotal += p.GetBytesTotal()
		if p.GetState() == hintRunning {
			resp.Done = false
		}
	}
	return resp, nil
}

func (s *Server) partProgress(ctx context.Context, p hintPart) *stokerv1.PrefetchProgress {
	id := p.id
	unreachable := func(err string) *stokerv1.PrefetchProgress {
		return &stokerv1.PrefetchProgress{Node: p.node, BytesTotal: p.bytes, ShardsTotal: uint32(p.shards), State: hintUnreachable, Error: err}
	}
	if p.err != "" {
		return unreachable(p.err)
	}
	if p.node == s.selfName() {
		if pr, ok := s.hints.progress(id); ok {
			return pr
		}
		return unreachable("this node forgot the hint")
	}
	conn, err := s.peers.Conn(p.addr)
	if err != nil {
		return unreachable(err.Error())
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	r, err := stokerv1.NewPeerClient(conn).HintStatus(ctx, &stokerv1.HintStatusRequest{HintId: id})
	if err != nil {
		return unreachable(err.Error())
	}
	return r.GetProgress()
}

// warmRemote hands node at addr its part of a hint.
func (s *Server) warmRemote(ctx context.Context, addr, id string, objs []storage.Object, deadline time.Time, onlyIfRoom bool) error {
	if s.peers == nil || addr == "" {
		return errors.New("no gRPC address for the owner")
	}
	conn, err := s.peers.Conn(addr)
	if err != nil {
		return err
	}
	req := &stokerv1.WarmRequest{HintId: id, OnlyIfRoom: onlyIfRoom}
	if !deadline.IsZero() {
		req.DeadlineUnixMs = deadline.UnixMilli()
	}
	for _, o := range objs {
		req.Shards = append(req.Shards, shardProto(o))
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = stokerv1.NewPeerClient(conn).Warm(ctx, req)
	return err
}

// nextEpoch starts, once per (dataset, settings), the prefetch of the
// first shards of the epoch after st.Epoch by their owners, each only if
// its cache has room, so the next epoch starts warm.
func (h *hints) nextEpoch(ds *dataset.Dataset, st shuffle.Settings) {
	budget := h.s.cfg.NextEpochBytes
	if budget < 0 || h.s.prefetcher.KeepFraction() < 1 {
		// A dataset larger than the cache keeps its kept subset, which this
		// epoch reads anyway; anything else fetched for the next epoch would
		// push out what this one reads.
		return
	}
	key := nextKey(ds.Manifest.URL, st)
	if _, seen := h.next.Get(key); seen {
		return
	}
	h.next.Add(key, struct{}{})
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		objs, err := h.order(ds, st, []uint64{st.Epoch + 1}, uint64(budget))
		if err != nil {
			h.s.log.Warn("cannot plan the next epoch's prefetch", "url", ds.Manifest.URL, "err", err)
			return
		}
		h.spreadHint(h.ctx, "next-"+newHintID(), objs, time.Time{}, true)
	}()
}

func nextKey(url string, st shuffle.Settings) string {
	b, _ := json.Marshal(struct {
		U string
		S shuffle.Settings
	}{url, st})
	return string(b)
}

// handlePrefetch is POST /v1/prefetch: a PrefetchRequest as JSON (field
// names as in the proto: url, seed, epochs, shuffle_window, no_shuffle,
// deadline_unix_ms, budget_bytes) answered by a PrefetchResponse.
func (s *Server) handlePrefetch(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeJSONError(w, status.Error(codes.InvalidArgument, err.Error()))
		return
	}
	var req stokerv1.PrefetchRequest
	if err := protojson.Unmarshal(body, &req); err != nil {
		writeJSONError(w, status.Errorf(codes.InvalidArgument, "body: %v", err))
		return
	}
	noteDataset(r.Context(), req.GetUrl())
	resp, err := (&loader{s: s}).Prefetch(r.Context(), &req)
	writeJSON(w, resp, err)
}

// handlePrefetchStatus is GET /v1/prefetch/{id}.
func (s *Server) handlePrefetchStatus(w http.ResponseWriter, r *http.Request) {
	resp, err := (&loader{s: s}).PrefetchStatus(r.Context(), &stokerv1.PrefetchStatusRequest{HintId: r.PathValue("id")})
	writeJSON(w, resp, err)
}

func writeJSON(w http.ResponseWriter, m proto.Message, err error) {
	if err != nil {
		writeJSONError(w, err)
		return
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		writeJSONError(w, status.Error(codes.Internal, err.Error()))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

// writeJSONError answers {"error": message} with the HTTP status that
// matches the gRPC code.
func writeJSONError(w http.ResponseWriter, err error) {
	st, _ := status.FromError(toStatus(err))
	code := http.StatusInternalServerError
	switch st.Code() {
	case codes.InvalidArgument:
		code = http.StatusBadRequest
	case codes.NotFound:
		code = http.StatusNotFound
	case codes.PermissionDenied:
		code = http.StatusForbidden
	case codes.Unauthenticated:
		code = http.StatusUnauthorized
	case codes.ResourceExhausted:
		code = http.StatusTooManyRequests
	case codes.Unavailable:
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": st.Message()})
}
