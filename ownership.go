package keyledger

import "time"

// OwnerKeys counts one owner's live keys per environment, a row of the
// ownership dashboard.
type OwnerKeys struct {
	ID     int64
	Email  string
	Name   string
	Active bool
	Counts map[string]int
	Total  int
}

// SeenRecord is one reveal or export by a person.
type SeenRecord struct {
	Time        time.Time
	Action      string
	KeyID       string
	KeyName     string
	Environment string
	Version     int
	Reason      string
	// Current: the version seen is still the key's current one (and the
	// key is live), so it would need rotating if this person left.
	Current  bool
	Archived bool
}
