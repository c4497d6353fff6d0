package wire

import "time"

// Whoami is GET /whoami: the token's user and the token itself.
type Whoami struct {
	Email string      `json:"email"`
	Name  string      `json:"name"`
	Role  string      `json:"role"`
	Token WhoamiToken `json:"token"`
}

// WhoamiToken is the token a request came with (never its secret).
type WhoamiToken struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Scopes    []string  `json:"scopes"`
	ExpiresAt time.Time `json:"expires_at"`
}
