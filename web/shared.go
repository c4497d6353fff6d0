package web

import (
	"context"
	"strings"
	"sync"

	"github.com/a-h/templ"
)

// sharedBody keeps the HTML of a page body that is the same for everyone
// (the rotation overview, the ownership dashboard). The store's coalescer
// hands every request that waited for one computation the same result;
// the first of them renders the body and the others reuse it, so under
// load a rendering serves many requests as the computation does. The key
// is the address of the result's first element: the cache holds it, so
// the memory cannot be reused and a newer result never matches.
type sharedBody struct {
	mu   sync.Mutex
	key  any
	html string
}

// render returns comp's HTML, rendered anew unless key (non-nil) is the
// key of the last rendering. Holding the lock while rendering makes the
// other requests of the same computation wait for this rendering rather
// than each do it.
func (b *sharedBody) render(ctx context.Context, key any, comp templ.Component) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if key != nil && b.key == key {
		return b.html, nil
	}
	var sb strings.Builder
	if err := comp.Render(ctx, &sb); err != nil {
		return "", err
	}
	b.key, b.html = key, sb.String()
	return b.html, nil
}
