package keyledger

import (
	"slices"
	"time"
)

// UsageDay is one provider key's usage on one UTC day, as the sync stores
// it, the key page charts it and the spend rule reads it.
type UsageDay struct {
	Day          time.Time // UTC midnight
	Requests     int64
	InputTokens  int64
	OutputTokens int64
}

// Tokens is input and output tokens together.
func (u UsageDay) Tokens() int64 { return u.InputTokens + u.OutputTokens }

// SpendRule decides when a key's daily usage is a spike worth telling its
// owner and the leads about: more than Factor times its median over the
// Window days before, on requests or on tokens, and at least that
// measure's floor. The floors keep a key that goes from 3 requests to 12
// from waking anyone; the median (not the mean) keeps one earlier burst
// from hiding the next.
type SpendRule struct {
	Factor        float64
	Window        int   // days before the day looked at
	FloorRequests int64 // the day must reach this many requests…
	FloorTokens   int64 // …or this many tokens (input + output)
}

// DefaultSpendRule is 3× the trailing 14-day median, with floors of 1,000
// requests or 1,000,000 tokens a day: below both, a day costs a few
// dollars at most, whatever the multiple.
func DefaultSpendRule() SpendRule {
	return SpendRule{Factor: 3, Window: 14, FloorRequests: 1000, FloorTokens: 1_000_000}
}

// The measures a spike is found on.
const (
	SpikeRequests = "requests"
	SpikeTokens   = "tokens"
)

// SpendSpike is a day that broke the rule, with the numbers that say so.
type SpendSpike struct {
	Day            time.Time
	Measure        string // SpikeRequests or SpikeTokens: the one that broke the rule (requests first)
	Requests       int64
	Tokens         int64
	MedianRequests float64
	MedianTokens   float64
}

// Ratio is how many times its median the spiking measure reached, or 0
// when the median is zero (the key was idle before).
func (s SpendSpike) Ratio() float64 {
	v, m := float64(s.Requests), s.MedianRequests
	if s.Measure == SpikeTokens {
		v, m = float64(s.Tokens), s.MedianTokens
	}
	if m == 0 {
		return 0
	}
	return v / m
}

// Spike looks at the UTC day holding day in history (any days, any order;
// days missing from it count as zero use, so a key idle for two weeks
// that wakes up hard is a spike) and reports whether it broke the rule.
func (r SpendRule) Spike(history []UsageDay, day time.Time) (SpendSpike, bool) {
	d := UTCDay(day)
	from := d.AddDate(0, 0, -r.Window)
	reqs := make([]float64, r.Window)
	toks := make([]float64, r.Window)
	s := SpendSpike{Day: d}
	for _, u := range history {
		ud := UTCDay(u.Day)
		switch {
		case ud.Equal(d):
			s.Requests += u.Requests
			s.Tokens += u.Tokens()
		case !ud.Before(from) && ud.Before(d):
			i := int(ud.Sub(from) / (24 * time.Hour))
			reqs[i] += float64(u.Requests)
			toks[i] += float64(u.Tokens())
		}
	}
	s.MedianRequests, s.MedianTokens = median(reqs), median(toks)
	switch {
	case s.Requests >= r.FloorRequests && float64(s.Requests) > r.Factor*s.MedianRequests:
		s.Measure = SpikeRequests
	case s.Tokens >= r.FloorTokens && float64(s.Tokens) > r.Factor*s.MedianTokens:
		s.Measure = SpikeTokens
	default:
		return s, false
	}
	return s, true
}

// UTCDay is the UTC midnight starting the day that holds t.
func UTCDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
