package server

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/prefetch/wds"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

const dashboardPath = "../deploy/grafana/stoker.json"

// promKeywords are PromQL words that are not metric names.
var promKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true, "atan2": true,
}

var (
	promStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatchers = regexp.MustCompile(`\{[^{}]*\}`)
	promRanges   = regexp.MustCompile(`\[[^\[\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promVars     = regexp.MustCompile(`\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*`)
	promIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
)

// metricNames returns the metric names a PromQL expression (or a Grafana
// label_values query) reads: identifiers that are not functions (followed
// by "("), keywords, labels (inside {} or a grouping clause), durations
// or numbers.
func metricNames(expr string) []string {
	if m := regexp.MustCompile(`^label_values\(\s*([^,)]+)`).FindStringSubmatch(expr); m != nil {
		expr = m[1]
	}
	expr = promStrings.ReplaceAllString(expr, `""`)
	expr = promVars.ReplaceAllString(expr, "0")
	expr = promMatchers.ReplaceAllString(expr, " ")
	expr = promRanges.ReplaceAllString(expr, " ")
	expr = promGrouping.ReplaceAllString(expr, " ")
	seen := map[string]bool{}
	for _, loc := range promIdent.FindAllStringIndex(expr, -1) {
		word := expr[loc[0]:loc[1]]
		if loc[0] > 0 && strings.ContainsAny(expr[loc[0]-1:loc[0]], "0123456789.") {
			continue // the exponent of a number, like 1e-9
		}
		rest := strings.TrimLeft(expr[loc[1]:], " \t\n")
		if strings.HasPrefix(rest, "(") || promKeywords[strings.ToLower(word)] {
			continue
		}
		seen[word] = true
	}
	var out []string
	for w := range seen {
		out = append(out, w)
	}
	sort.Strings(out)
	return out
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string]string{
		`histogram_quantile(0.99, sum by (le, dataset) (rate(stoker_batch_latency_seconds_bucket{instance=~"$instance",dataset=~"a{b}"}[$__rate_interval])))`: "stoker_batch_latency_seconds_bucket",
		`sum(rate(a_total[5m])) / clamp_min(sum(b) + c * on(instance) group_left() d, 1e-9)`:                                                                  "a_total b c d",
		`label_values(stoker_active_streams, instance)`:                                                                                                       "stoker_active_streams",
		`go_goroutines{instance=~"${instance}"} offset 1h`:                                                                                                    "go_goroutines",
	} {
		if got := strings.Join(metricNames(expr), " "); got != want {
			t.Errorf("metricNames(%q) = %q, want %q", expr, got, want)
		}
	}
}

// dashboardQueries returns every query of a Grafana dashboard: panel
// targets (rows' panels too) and query variables, by where they are.
func dashboardQueries(t *testing.T, raw []byte) map[string]string {
	t.Helper()
	type target struct {
		Expr string `json:"expr"`
	}
	type panel struct {
		ID      int      `json:"id"`
		Title   string   `json:"title"`
		Type    string   `json:"type"`
		Targets []target `json:"targets"`
		Panels  []panel  `json:"panels"`
	}
	var d struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	out := map[string]string{}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for i, tg := range p.Targets {
				out[p.Title+" #"+string(rune('A'+i))] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		if json.Unmarshal(v.Query, &q) != nil {
			_ = json.Unmarshal(v.Query, &q.Query)
		}
		out["variable $"+v.Name] = q.Query
	}
	return out
}

// missingMetrics returns, for each query, the metric names it reads that
// names does not hold.
func missingMetrics(queries map[string]string, names map[string]bool) []string {
	var out []string
	for where, expr := range queries {
		for _, m := range metricNames(expr) {
			if !names[m] {
				out = append(out, where+": "+m)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Every query of the Grafana dashboard reads only metrics that a real
// server exports: scraped from an in-process server after an epoch, a
// prefetch hint and a refused request (so that the failure counters have
// series).
func TestDashboardQueriesExist(t *testing.T) {
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	queries := dashboardQueries(t, raw)
	if len(queries) < 30 {
		t.Fatalf("%d queries in the dashboard", len(queries))
	}
	h := newHarness(t, wds.Synthetic{Shards: 4, PerShard: 8, SampleSize: 1024, Seed: 1}, nil)
	readEpoch(t, h.client, h.url, 8)
	api := stokerv1.NewLoaderClient(dialRaw(t, h.addr))
	if _, err := api.Prefetch(context.Background(), &stokerv1.PrefetchRequest{Url: h.url, Epochs: []uint64{1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.OpenDataset(context.Background(), &stokerv1.OpenDatasetRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("open without a URL: %v", err)
	}
	names := seriesNames(scrape(t, h.srv))
	if missing := missingMetrics(queries, names); len(missing) > 0 {
		t.Fatalf("dashboard queries read metrics stokerd does not export:\n%s", strings.Join(missing, "\n"))
	}
	// The check is real: a misspelt name is caught.
	if missing := missingMetrics(map[string]string{"bad": `rate(stoker_cache_hit_total[5m])`}, names); len(missing) != 1 {
		t.Fatalf("a misspelt metric was not caught: %v", missing)
	}
}
