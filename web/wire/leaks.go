package wire

// LeakCheckRequest is POST /leaks/check: strings a scanner found, at most
// 500 per call, each at most 1024 bytes.
type LeakCheckRequest struct {
	Candidates []string `json:"candidates"`
}

// LeakCheckResult lists the candidates that are a live key's value; a
// candidate not listed is not one.
type LeakCheckResult struct {
	Hits []LeakHit `json:"hits"`
}

// LeakHit is one matched candidate, by its index in the request: the
// key's metadata, never the value.
type LeakHit struct {
	Index       int    `json:"index"`
	KeyID       string `json:"key_id"`
	Name        string `json:"name"`
	Environment string `json:"environment"`
	Project     string `json:"project"`
	OwnerEmail  string `json:"owner_email"`
	Version     int    `json:"version"`
	Current     bool   `json:"current"`
}
