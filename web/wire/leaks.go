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

// LeakReportRequest is POST /leaks: a value found out in the open and
// where it was seen (a URL or a few words). The value is matched and
// dropped; it is never stored or returned.
type LeakReportRequest struct {
	Value string `json:"value"`
	Where string `json:"where"`
}

// LeakReport is the answer to a report. When the value is a live key
// version, an incident is open on it (opened now, or joined when one was
// open already); otherwise matched is false and nothing else is set.
type LeakReport struct {
	Matched     bool    `json:"matched"`
	IncidentID  *int64  `json:"incident_id"`
	IncidentURL *string `json:"incident_url"`
	Joined      bool    `json:"joined"`
	KeyID       *string `json:"key_id"`
	Name        string  `json:"name"`
	Version     int     `json:"version"`
	Current     bool    `json:"current"`
}
