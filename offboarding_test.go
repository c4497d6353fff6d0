package keyledger

import "testing"

// TestOffboardingSummaryDone: the list's "done" column is the resolved
// items, whatever was resolved how.
func TestOffboardingSummaryDone(t *testing.T) {
	for _, c := range []struct{ open, total, done int }{{0, 0, 0}, {3, 3, 0}, {1, 4, 3}, {0, 5, 5}} {
		if got := (OffboardingSummary{Open: c.open, Total: c.total}).Done(); got != c.done {
			t.Errorf("Done of %d open in %d = %d, want %d", c.open, c.total, got, c.done)
		}
	}
}
