package keyledger

import (
	"testing"
	"time"
)

func TestSpendSpike(t *testing.T) {
	day := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	// flat gives the 14 days before day the same usage each.
	flat := func(req, tok int64) []UsageDay {
		var out []UsageDay
		for i := 1; i <= 14; i++ {
			out = append(out, UsageDay{Day: day.AddDate(0, 0, -i), Requests: req, InputTokens: tok / 2, OutputTokens: tok - tok/2})
		}
		return out
	}
	with := func(h []UsageDay, today UsageDay) []UsageDay {
		today.Day = day
		return append(append([]UsageDay(nil), h...), today)
	}
	rule := DefaultSpendRule()
	cases := []struct {
		name    string
		history []UsageDay
		spike   bool
		measure string
	}{
		{"no usage at all", nil, false, ""},
		{"steady use", with(flat(2000, 100), UsageDay{Requests: 2100}), false, ""},
		{"exactly three times is not more", with(flat(2000, 0), UsageDay{Requests: 6000}), false, ""},
		{"more than three times, above the floor", with(flat(2000, 0), UsageDay{Requests: 6001}), true, SpikeRequests},
		{"ten times but under the request floor", with(flat(50, 0), UsageDay{Requests: 500}), false, ""},
		{"at the request floor from nothing", with(nil, UsageDay{Requests: 1000}), true, SpikeRequests},
		{"just under the request floor from nothing", with(nil, UsageDay{Requests: 999}), false, ""},
		{"tokens spike while requests stay flat", with(flat(2000, 400_000), UsageDay{Requests: 2000, InputTokens: 1_000_000, OutputTokens: 300_000}), true, SpikeTokens},
		{"tokens ten times but under the token floor", with(flat(10, 50_000), UsageDay{Requests: 10, InputTokens: 500_000}), false, ""},
		// Missing days count as zero: a key silent for two weeks that
		// suddenly works hard is the shape of a leaked, forgotten key.
		{"dormant key wakes up", with([]UsageDay{{Day: day.AddDate(0, 0, -20), Requests: 100_000}}, UsageDay{Requests: 5000}), true, SpikeRequests},
		// The median ignores one earlier burst.
		{"one earlier burst does not raise the median", with(append(flat(1000, 0)[1:], UsageDay{Day: day.AddDate(0, 0, -1), Requests: 90_000}), UsageDay{Requests: 3500}), true, SpikeRequests},
		// Days after the day looked at do not count.
		{"later days are ignored", append(with(flat(2000, 0), UsageDay{Requests: 7000}), UsageDay{Day: day.AddDate(0, 0, 1), Requests: 1}), true, SpikeRequests},
		// Days older than the window do not count.
		{"days outside the window are ignored", with(append(flat(0, 0), UsageDay{Day: day.AddDate(0, 0, -15), Requests: 1_000_000}), UsageDay{Requests: 1500}), true, SpikeRequests},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, ok := rule.Spike(c.history, day)
			if ok != c.spike {
				t.Fatalf("Spike = %v (%+v), want %v", ok, s, c.spike)
			}
			if ok && s.Measure != c.measure {
				t.Errorf("measure = %q, want %q", s.Measure, c.measure)
			}
			if ok && !s.Day.Equal(day) {
				t.Errorf("day = %s, want %s", s.Day, day)
			}
		})
	}
}

func TestSpendSpikeReportsTheNumbers(t *testing.T) {
	day := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	var h []UsageDay
	// 14 days: 7 at 100 requests, 7 at 300: the median is 200.
	for i := 1; i <= 14; i++ {
		r := int64(100)
		if i%2 == 0 {
			r = 300
		}
		h = append(h, UsageDay{Day: day.AddDate(0, 0, -i), Requests: r, InputTokens: 10, OutputTokens: 20})
	}
	h = append(h, UsageDay{Day: day.Add(0), Requests: 4000, InputTokens: 7, OutputTokens: 8})
	s, ok := DefaultSpendRule().Spike(h, day)
	if !ok {
		t.Fatal("no spike")
	}
	if s.Requests != 4000 || s.Tokens != 15 || s.MedianRequests != 200 || s.MedianTokens != 30 {
		t.Errorf("spike = %+v, want 4000 requests, 15 tokens, medians 200 and 30", s)
	}
	if got := s.Ratio(); got != 20 {
		t.Errorf("ratio = %v, want 20", got)
	}
}

func TestSpendSpikeDayIsNormalised(t *testing.T) {
	// A time within the day (and in another zone) names the same UTC day.
	day := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	h := []UsageDay{{Day: day, Requests: 5000}}
	at := time.Date(2026, 12, 4, 15, 30, 0, 0, time.FixedZone("x", 3600))
	if _, ok := DefaultSpendRule().Spike(h, at); !ok {
		t.Fatal("a time within the day should evaluate that day")
	}
}
