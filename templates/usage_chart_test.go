package templates

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"golang.org/x/net/html"
)

// bar is one <rect class="bar"> as rendered.
type bar struct {
	day    string
	value  int64
	x, y   float64
	w, h   float64
	series string
}

type renderedChart struct {
	bars       map[string][]bar // by series (requests, tokens)
	titles     []string
	descs      []string
	labelledBy []string
	empty      bool
	text       string
}

func renderUsage(t *testing.T, days []keyledger.UsageDay, now time.Time) renderedChart {
	t.Helper()
	var buf bytes.Buffer
	if err := UsageCharts(NewUsageCharts(days, now)).Render(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	rc := renderedChart{bars: map[string][]bar{}}
	var walk func(n *html.Node, series string)
	walk = func(n *html.Node, series string) {
		if n.Type == html.ElementNode {
			a := map[string]string{}
			for _, at := range n.Attr {
				a[at.Key] = at.Val
			}
			switch {
			case n.Data == "svg":
				series = a["data-series"]
				rc.labelledBy = append(rc.labelledBy, a["aria-labelledby"])
				if a["role"] != "img" {
					t.Errorf("svg role = %q, want img", a["role"])
				}
			case n.Data == "rect" && a["class"] == "bar":
				f := func(k string) float64 {
					v, err := strconv.ParseFloat(a[k], 64)
					if err != nil {
						t.Fatalf("rect %s=%q: %v", k, a[k], err)
					}
					return v
				}
				v, _ := strconv.ParseInt(a["data-value"], 10, 64)
				rc.bars[series] = append(rc.bars[series], bar{day: a["data-day"], value: v, x: f("x"), y: f("y"), w: f("width"), h: f("height"), series: series})
			case n.Data == "title" && n.FirstChild != nil && n.Parent.Data == "svg":
				rc.titles = append(rc.titles, n.FirstChild.Data)
			case n.Data == "desc" && n.FirstChild != nil:
				rc.descs = append(rc.descs, n.FirstChild.Data)
			}
			if a["data-testid"] == "usage-empty" {
				rc.empty = true
			}
		}
		if n.Type == html.TextNode {
			rc.text += n.Data + " "
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, series)
		}
	}
	walk(doc, "")
	return rc
}

var chartNow = time.Date(2026, 12, 4, 15, 0, 0, 0, time.UTC)

func chartDay(back int) time.Time { return keyledger.UTCDay(chartNow).AddDate(0, 0, -back) }

func TestUsageChartBarsForTheRightDays(t *testing.T) {
	days := []keyledger.UsageDay{
		{Day: chartDay(0), Requests: 100, InputTokens: 1000, OutputTokens: 500},
		{Day: chartDay(2), Requests: 50, InputTokens: 300, OutputTokens: 0},
		{Day: chartDay(29), Requests: 25, InputTokens: 10, OutputTokens: 20},
		// Outside the 30 days: not drawn.
		{Day: chartDay(30), Requests: 9999},
		{Day: chartDay(-1), Requests: 9999},
	}
	rc := renderUsage(t, days, chartNow)
	reqs := rc.bars["requests"]
	if len(reqs) != 3 {
		t.Fatalf("request bars = %+v, want 3", reqs)
	}
	want := map[string]int64{"2026-12-04": 100, "2026-12-02": 50, "2026-11-05": 25}
	var today, first bar
	for _, b := range reqs {
		if want[b.day] != b.value {
			t.Errorf("bar for %s = %d, want %d", b.day, b.value, want[b.day])
		}
		switch b.day {
		case "2026-12-04":
			today = b
		case "2026-11-05":
			first = b
		}
	}
	// Time runs left to right: the oldest day is leftmost, today rightmost,
	// and the slots are evenly spaced.
	if !(first.x < today.x) {
		t.Errorf("oldest day at x=%v, today at x=%v: want oldest left", first.x, today.x)
	}
	if slot := (today.x - first.x) / 29; slot <= first.w {
		t.Errorf("slot %v not wider than bar %v", slot, first.w)
	}
	toks := rc.bars["tokens"]
	if len(toks) != 3 {
		t.Fatalf("token bars = %+v, want 3", toks)
	}
	for _, b := range toks {
		if b.day == "2026-12-04" && b.value != 1500 {
			t.Errorf("tokens today = %d, want 1500 (input + output)", b.value)
		}
	}
}

func TestUsageChartScalesToThePeak(t *testing.T) {
	days := []keyledger.UsageDay{
		{Day: chartDay(1), Requests: 400},
		{Day: chartDay(3), Requests: 100},
		{Day: chartDay(5), Requests: 1}, // tiny but not zero: still visible
	}
	rc := renderUsage(t, days, chartNow)
	by := map[string]bar{}
	for _, b := range rc.bars["requests"] {
		by[b.day] = b
	}
	peak, quarter, tiny := by["2026-12-03"], by["2026-12-01"], by["2026-11-29"]
	if peak.h != ChartPlotHeight {
		t.Errorf("peak bar height = %v, want the full %v", peak.h, ChartPlotHeight)
	}
	if got := quarter.h / peak.h; got < 0.24 || got > 0.26 {
		t.Errorf("100 vs 400: height ratio %v, want 0.25", got)
	}
	if tiny.h < 1 {
		t.Errorf("a day with 1 request has height %v: want at least 1 so it shows", tiny.h)
	}
	// Bars stand on the baseline.
	for _, b := range []bar{peak, quarter, tiny} {
		if b.y+b.h != ChartPlotHeight+ChartTop {
			t.Errorf("bar %s: y+h = %v, want baseline %v", b.day, b.y+b.h, ChartPlotHeight+ChartTop)
		}
	}
	if len(rc.bars["tokens"]) != 0 {
		t.Errorf("no tokens were used, yet token bars were drawn: %+v", rc.bars["tokens"])
	}
}

func TestUsageChartEmpty(t *testing.T) {
	for name, days := range map[string][]keyledger.UsageDay{
		"no rows":   nil,
		"all zeros": {{Day: chartDay(3)}},
		"too old":   {{Day: chartDay(45), Requests: 10}},
	} {
		t.Run(name, func(t *testing.T) {
			rc := renderUsage(t, days, chartNow)
			if !rc.empty {
				t.Errorf("no empty-state message; text: %s", rc.text)
			}
			if n := len(rc.bars["requests"]) + len(rc.bars["tokens"]); n != 0 {
				t.Errorf("%d bars drawn for no usage", n)
			}
		})
	}
}

func TestUsageChartOneDay(t *testing.T) {
	rc := renderUsage(t, []keyledger.UsageDay{{Day: chartDay(7), Requests: 3, InputTokens: 40, OutputTokens: 2}}, chartNow)
	if len(rc.bars["requests"]) != 1 || len(rc.bars["tokens"]) != 1 {
		t.Fatalf("bars = %+v, want one of each", rc.bars)
	}
	b := rc.bars["requests"][0]
	if b.day != "2026-11-27" || b.h != ChartPlotHeight {
		t.Errorf("one day: bar %+v, want 2026-11-27 at full height", b)
	}
	// Its slot is the 23rd of 30 (index 22).
	if want := 22*ChartSlot + ChartGap/2; b.x != want {
		t.Errorf("x = %v, want %v", b.x, want)
	}
}

func TestUsageChartTextAlternative(t *testing.T) {
	days := []keyledger.UsageDay{
		{Day: chartDay(0), Requests: 1200, InputTokens: 2_000_000, OutputTokens: 500_000},
		{Day: chartDay(4), Requests: 3400, InputTokens: 10, OutputTokens: 0},
	}
	rc := renderUsage(t, days, chartNow)
	if len(rc.titles) != 2 || len(rc.descs) != 2 {
		t.Fatalf("titles %q, descs %q: want one of each per chart", rc.titles, rc.descs)
	}
	d := strings.Join(rc.descs, " | ")
	for _, want := range []string{"4,600 requests", "peak 3,400 on 30 Nov", "2,500,010 tokens", "peak 2,500,000 on 4 Dec", "2 of 30 days"} {
		if !strings.Contains(d, want) {
			t.Errorf("descriptions %q lack %q", d, want)
		}
	}
	for _, ids := range rc.labelledBy {
		if f := strings.Fields(ids); len(f) != 2 {
			t.Errorf("aria-labelledby = %q, want the title and desc ids", ids)
		}
	}
}

func TestUsageChartIDsAreUniquePerProviderKey(t *testing.T) {
	days := []keyledger.UsageDay{{Day: chartDay(1), Requests: 5}}
	var buf bytes.Buffer
	for _, id := range []string{"pk-1", "pk-2"} {
		if err := UsageCharts(NewUsageCharts(days, chartNow).WithID(id)).Render(context.Background(), &buf); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(buf.String(), ` id="`)[1:] {
		id := part[:strings.IndexByte(part, '"')]
		if seen[id] {
			t.Errorf("id %q twice", id)
		}
		seen[id] = true
	}
	if len(seen) != 8 {
		t.Errorf("%d ids, want 8 (title and desc of two charts, twice)", len(seen))
	}
}
