// Package static holds the CSS, JavaScript and images, embedded into the
// binary and served under content-hashed paths (/static/<name>.<hash>.<ext>)
// so they can be cached forever and a new release is never served stale.
package static

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

//go:embed *.css *.js *.svg
var files embed.FS

// Asset is one embedded file.
type Asset struct {
	Name        string // e.g. "app.css"
	HashedPath  string // e.g. "/static/app.3f2a9c1b.css"
	ContentType string
	Body        []byte
}

// Assets indexes the embedded files by name and by hashed path.
type Assets struct {
	byName map[string]*Asset
	byPath map[string]*Asset
}

// Load hashes every embedded file. It is called once at startup.
func Load() (*Assets, error) {
	a := &Assets{byName: map[string]*Asset{}, byPath: map[string]*Asset{}}
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return nil, fmt.Errorf("read static files: %w", err)
	}
	for _, e := range entries {
		body, err := fs.ReadFile(files, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read static file %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(body)
		ext := path.Ext(e.Name())
		hashed := "/static/" + strings.TrimSuffix(e.Name(), ext) + "." + hex.EncodeToString(sum[:])[:12] + ext
		as := &Asset{Name: e.Name(), HashedPath: hashed, ContentType: contentType(ext), Body: body}
		a.byName[e.Name()] = as
		a.byPath[hashed] = as
	}
	return a, nil
}

// Path returns the hashed URL path of a file; an unknown name panics at
// render time in tests rather than shipping a broken link.
func (a *Assets) Path(name string) string {
	if as, ok := a.byName[name]; ok {
		return as.HashedPath
	}
	panic("static: unknown asset " + name)
}

// ByPath finds an asset by its hashed URL path.
func (a *Assets) ByPath(p string) (*Asset, bool) {
	as, ok := a.byPath[p]
	return as, ok
}

func contentType(ext string) string {
	switch ext {
	case ".css":
		return "text/css; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	return "application/octet-stream"
}
