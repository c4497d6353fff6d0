package templates

import (
	"strconv"
	"strings"
	"time"

	"github.com/keyledger/keyledger"
)

// The usage charts are drawn on the server as inline SVG: 30 slots of
// ChartSlot units, a bar ChartSlot-ChartGap wide in each, bars standing
// on a baseline ChartTop+ChartPlotHeight down. The viewBox stretches to the
// width of the page (no text inside the SVG, so nothing distorts); the
// numbers live in the <title>/<desc> and the caption.
const (
	ChartDays       = keyledger.UsageDays
	ChartSlot       = 10.0
	ChartGap        = 2.0
	ChartTop        = 2.0
	ChartPlotHeight = 60.0
	chartWidth      = ChartDays * ChartSlot
	chartHeight     = ChartTop + ChartPlotHeight + 2
)

// UsageChartsView is a key's usage at its provider over the last
// ChartDays UTC days (today included), as two charts: requests and
// tokens per day. Their scales differ by orders of magnitude, so they do
// not share an axis.
type UsageChartsView struct {
	From, To time.Time // first and last day shown
	Requests UsageChart
	Tokens   UsageChart
	// ActiveDays is how many days had any use.
	ActiveDays int
	// InputTokens and OutputTokens are the totals behind Tokens.
	InputTokens, OutputTokens int64
	// ID prefixes the charts' element ids, unique on the page (a key
	// can have several provider keys, each with its charts).
	ID string
}

// WithID returns v with its element ids prefixed by id.
func (v UsageChartsView) WithID(id string) UsageChartsView {
	v.ID = id
	return v
}

// domID is the id of part (title, desc) of chart c.
func (v UsageChartsView) domID(c UsageChart, part string) string {
	id := "usage-" + c.Series + "-" + part
	if v.ID != "" {
		id = v.ID + "-" + id
	}
	return id
}

// Empty reports whether the key was not used at all in the window.
func (v UsageChartsView) Empty() bool { return v.ActiveDays == 0 }

// UsageChart is one series, laid out.
type UsageChart struct {
	Series string // "requests" or "tokens"
	Bars   []UsageBar
	Total  int64
	Peak   UsageBar
}

// UsageBar is one day's bar in viewBox units.
type UsageBar struct {
	Day        time.Time
	Value      int64
	X, Y, W, H float64
}

// NewUsageCharts lays out days (any order; days outside the window are
// left out) for the ChartDays days ending on now's UTC day.
func NewUsageCharts(days []keyledger.UsageDay, now time.Time) UsageChartsView {
	to := keyledger.UTCDay(now)
	from := to.AddDate(0, 0, -(ChartDays - 1))
	v := UsageChartsView{From: from, To: to}
	var req, tok [ChartDays]int64
	for _, d := range days {
		day := keyledger.UTCDay(d.Day)
		if day.Before(from) || day.After(to) {
			continue
		}
		i := int(day.Sub(from) / (24 * time.Hour))
		req[i] += d.Requests
		tok[i] += d.Tokens()
		v.InputTokens += d.InputTokens
		v.OutputTokens += d.OutputTokens
	}
	for i := range ChartDays {
		if req[i] > 0 || tok[i] > 0 {
			v.ActiveDays++
		}
	}
	v.Requests = layoutSeries("requests", req[:], from)
	v.Tokens = layoutSeries("tokens", tok[:], from)
	return v
}

func layoutSeries(series string, vals []int64, from time.Time) UsageChart {
	c := UsageChart{Series: series}
	for i, n := range vals {
		c.Total += n
		if n > c.Peak.Value {
			c.Peak = UsageBar{Day: from.AddDate(0, 0, i), Value: n}
		}
	}
	if c.Peak.Value == 0 {
		return c
	}
	for i, n := range vals {
		if n == 0 {
			continue
		}
		// A day with any use stays visible however small next to the peak.
		h := max(ChartPlotHeight*float64(n)/float64(c.Peak.Value), 1)
		c.Bars = append(c.Bars, UsageBar{Day: from.AddDate(0, 0, i), Value: n,
			X: float64(i)*ChartSlot + ChartGap/2, Y: ChartTop + ChartPlotHeight - h, W: ChartSlot - ChartGap, H: h})
	}
	return c
}

// Describe is the chart's text alternative: totals and the peak day.
func (v UsageChartsView) Describe(c UsageChart) string {
	var b strings.Builder
	b.WriteString(groupDigits(c.Total) + " " + c.Series)
	if c.Series == "tokens" {
		b.WriteString(" (" + groupDigits(v.InputTokens) + " input, " + groupDigits(v.OutputTokens) + " output)")
	}
	b.WriteString(" from " + shortDay(v.From) + " to " + shortDay(v.To) + " (UTC)")
	if c.Peak.Value > 0 {
		b.WriteString("; peak " + groupDigits(c.Peak.Value) + " on " + shortDay(c.Peak.Day))
	}
	b.WriteString("; used on " + strconv.Itoa(v.ActiveDays) + " of " + strconv.Itoa(ChartDays) + " days.")
	return b.String()
}

func (v UsageChartsView) title(c UsageChart) string {
	if c.Series == "tokens" {
		return "Tokens per day, last 30 days"
	}
	return "Requests per day, last 30 days"
}

// barTitle is a bar's tooltip.
func barTitle(b UsageBar, series string) string {
	return shortDay(b.Day) + ": " + groupDigits(b.Value) + " " + series
}

func shortDay(t time.Time) string { return t.UTC().Format("2 Jan") }

func isoDay(t time.Time) string { return t.UTC().Format(time.DateOnly) }

func svgNum(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func chartViewBox() string {
	return "0 0 " + svgNum(chartWidth) + " " + svgNum(chartHeight)
}

// groupDigits writes n with thousands separators: 1234567 → "1,234,567".
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
