package wire

// Error is every error answer of the API, with the status that fits.
type Error struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody says what went wrong. Code is a keyledger error code
// ("invalid", "forbidden", ...); Fields has per-field messages keyed like
// the request's fields, and is left out when there are none.
type ErrorBody struct {
	Code      string            `json:"code"`
	Message   string            `json:"message"`
	RequestID string            `json:"request_id"`
	Fields    map[string]string `json:"fields,omitempty"`
}
