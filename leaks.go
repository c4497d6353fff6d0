package keyledger

// Limits of one leak check call (POST /api/v1/leaks/check). A scanner
// sends its candidates in batches of at most MaxLeakCandidates; a
// candidate longer than MaxLeakCandidateBytes is no API key.
const (
	MaxLeakCandidates     = 500
	MaxLeakCandidateBytes = 1024
)

// LeakHit is a candidate that is the value of a live key version: the
// key's metadata (which every active user may see), never the value.
type LeakHit struct {
	Index       int // position of the candidate in the request
	KeyID       string
	Name        string
	Environment string
	Project     string
	OwnerEmail  string
	Version     int
	Current     bool
}
