package stoker_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/server"
)

// writeFile replaces path by rename, as a secret rotator does.
func writeFile(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// A token file is re-read when it changes, on the server and the client:
// tokens rotate without a restart, and a file left empty keeps the tokens
// read before.
func TestTokenFileRotation(t *testing.T) {
	dir := t.TempDir()
	serverFile, clientFile := filepath.Join(dir, "server-tokens"), filepath.Join(dir, "client-token")
	writeFile(t, serverFile, "# tokens this server accepts\ntok-a\n\ntok-b\n")
	writeFile(t, clientFile, "tok-a\n")
	srvTokens, err := stoker.LoadTokenFile(serverFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := srvTokens.Tokens(); !slices.Equal(got, []string{"tok-a", "tok-b"}) {
		t.Fatalf("tokens %v", got)
	}
	cfg := server.DefaultConfig()
	cfg.Cache.Dir, cfg.Cache.MemoryBytes, cfg.Cache.DiskBytes = filepath.Join(dir, "cache"), 16<<20, 0
	cfg.Auth = srvTokens
	srv, err := server.New(cfg, storage.NewSources(map[string]storage.Source{"file": storage.NewFileSource()}), nil)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	defer func() { _ = srv.Shutdown(context.Background()) }()

	cliTokens, err := stoker.LoadTokenFile(clientFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	stats := func(opts ...stoker.Option) error {
		c, err := stoker.Dial(lis.Addr().String(), append(opts, stoker.WithRetries(0))...)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.Stats(context.Background())
		return err
	}
	rotating, err := stoker.Dial(lis.Addr().String(), stoker.WithTokenFile(cliTokens))
	if err != nil {
		t.Fatal(err)
	}
	defer rotating.Close()
	rotatingStats := func() error { _, err := rotating.Stats(context.Background()); return err }

	for name, tc := range map[string]struct {
		err  error
		want codes.Code
	}{
		"no token":         {stats(), codes.Unauthenticated},
		"a wrong token":    {stats(stoker.WithToken("tok-c")), codes.Unauthenticated},
		"the second token": {stats(stoker.WithToken("tok-b")), codes.OK},
		"the token file":   {rotatingStats(), codes.OK},
	} {
		if status.Code(tc.err) != tc.want {
			t.Errorf("%s: %v, want %v", name, tc.err, tc.want)
		}
	}

	// The client moves to tok-b, then the server drops tok-a.
	writeFile(t, clientFile, "tok-b\n")
	writeFile(t, serverFile, "tok-b\n")
	if err := rotatingStats(); err != nil {
		t.Errorf("the same client after both files rotated: %v", err)
	}
	if err := stats(stoker.WithToken("tok-a")); status.Code(err) != codes.Unauthenticated {
		t.Errorf("the dropped token: %v, want Unauthenticated", err)
	}
	// A file left empty keeps what was read before.
	writeFile(t, serverFile, "\n")
	if got := srvTokens.Tokens(); !slices.Equal(got, []string{"tok-b"}) {
		t.Errorf("after an empty rewrite: tokens %v, want [tok-b]", got)
	}
	if _, err := stoker.LoadTokenFile(serverFile, nil); err == nil {
		t.Error("LoadTokenFile of a file with no token succeeded")
	}
	if _, err := stoker.LoadTokenFile(filepath.Join(dir, "missing"), nil); err == nil {
		t.Error("LoadTokenFile of a missing file succeeded")
	}
}
