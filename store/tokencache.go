package store

import (
	"sync"
	"time"

	"github.com/keyledger/keyledger"
)

// tokenCacheTTL is how long a checked token is trusted without asking the
// database again. A script calling the API many times a second then costs
// one token lookup per TTL instead of one per request. The price: a token
// revoked, or a user deactivated or demoted, on another replica keeps
// working for metadata reads on this one for up to the TTL. Reveals and
// exports do not pay it: their own query re-reads the user and the token.
// Changes made through this replica clear the cache at once.
const tokenCacheTTL = 2 * time.Second

// tokenCache maps a token's SHA-256 to the last answer of TokenActor.
type tokenCache struct {
	mu      sync.Mutex
	entries map[string]tokenCacheEntry
}

type tokenCacheEntry struct {
	user  keyledger.User
	token keyledger.Token
	until time.Time
}

func newTokenCache() *tokenCache { return &tokenCache{entries: map[string]tokenCacheEntry{}} }

// get returns copies, so a request that edits its actor cannot change
// what the next request sees.
func (c *tokenCache) get(hash []byte, now time.Time) (*keyledger.User, *keyledger.Token, bool) {
	c.mu.Lock()
	e, ok := c.entries[string(hash)]
	c.mu.Unlock()
	if !ok || !now.Before(e.until) {
		return nil, nil, false
	}
	u, t := e.user, e.token
	t.Scopes = append([]string(nil), t.Scopes...)
	return &u, &t, true
}

func (c *tokenCache) put(hash []byte, u *keyledger.User, t *keyledger.Token, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= 10000 {
		for k, e := range c.entries {
			if !now.Before(e.until) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= 10000 {
			clear(c.entries)
		}
	}
	e := tokenCacheEntry{user: *u, token: *t, until: now.Add(tokenCacheTTL)}
	e.token.Scopes = append([]string(nil), t.Scopes...)
	c.entries[string(hash)] = e
}

// clear forgets every token: called after anything that can revoke a
// token or change what its user may do.
func (c *tokenCache) clear() {
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}
