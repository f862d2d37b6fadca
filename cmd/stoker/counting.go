package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/stoker-data/stoker/clients/stoker"
)

// countingPoll is how often showCounting asks the server.
const countingPoll = 2 * time.Second

// showCounting prints, until the returned stop is called, the progress of
// the server counting url's samples (a dataset with no index, whose first
// batch waits for the count). stop may be called more than once.
func showCounting(ctx context.Context, c *stoker.Client, url string, out io.Writer) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(countingPoll)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			st, err := c.Stats(ctx)
			if err != nil {
				continue
			}
			for _, p := range st.GetCounting() {
				if p.GetUrl() == url {
					fmt.Fprintf(out, "counting the samples of %s: %d of %d shards (no index beside the shards: `stoker index %s` writes one)\n",
						url, p.GetShardsCounted(), p.GetShardsTotal(), url)
				}
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}
