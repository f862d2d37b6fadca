package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// browser is a headless Chromium driven over the DevTools protocol, with
// every console error, uncaught exception and failed load it reports.
type browser struct {
	ctx context.Context

	mu     sync.Mutex // guards errors
	errors []string
}

// chromiumPath finds Debian's chromium (or $CHROME_PATH). Without it the
// page tests skip, unless STOKER_REQUIRE_BROWSER=1 (make test sets it after
// installing the package), when they fail.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROME_PATH"), "chromium", "chromium-browser"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("STOKER_REQUIRE_BROWSER") == "1" {
		t.Fatal("chromium is not installed (apt-get install chromium; make test installs it)")
	}
	t.Skip("chromium is not installed: the status page test needs it (make test installs it)")
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile, no network
// beyond what the page asks, and the given extra headers on every request.
func newBrowser(t *testing.T, headers map[string]any) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1400, 1100),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{ctx: ctx}
	chromedp.ListenTarget(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.APITypeError || e.Type == runtime.APITypeAssert {
				var args []string
				for _, a := range e.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				b.fail("console." + string(e.Type) + ": " + strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			b.fail("exception: " + e.ExceptionDetails.Error())
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.LevelError {
				b.fail("log: " + e.Entry.Text + " " + e.Entry.URL)
			}
		}
	})
	// The first Run starts the browser, which lives as long as the context
	// of that Run: the tab's own, not one with a deadline.
	if err := chromedp.Run(ctx, cdplog.Enable(), runtime.Enable(), network.Enable(), network.SetExtraHTTPHeaders(network.Headers(headers))); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

func (b *browser) fail(msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errors = append(b.errors, msg)
}

func (b *browser) consoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// run runs actions with a deadline.
func (b *browser) run(t *testing.T, what string, actions ...chromedp.Action) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatalf("%s: %v (console: %v)", what, err, b.consoleErrors())
	}
}

// text returns the text of the element at sel.
func (b *browser) text(t *testing.T, sel string) string {
	t.Helper()
	var s string
	b.run(t, "text of "+sel, chromedp.Text(sel, &s, chromedp.ByQuery))
	return s
}

// eval evaluates a JavaScript expression into out.
func (b *browser) eval(t *testing.T, expr string, out any) {
	t.Helper()
	b.run(t, "eval "+expr, chromedp.Evaluate(expr, out))
}

// waitJS waits until a JavaScript expression is true in the page.
func (b *browser) waitJS(t *testing.T, what, expr string) {
	t.Helper()
	b.run(t, "wait for "+what, chromedp.Poll(expr, nil, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(45*time.Second)))
}

// artifactDir is where tests keep files for people to look at
// ($STOKER_ARTIFACT_DIR, which make test sets; else a temporary folder).
func artifactDir(t *testing.T) string {
	dir := os.Getenv("STOKER_ARTIFACT_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "stoker-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
