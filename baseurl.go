package keyledger

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// ParseBaseURL checks a provider base URL (KEYLEDGER_OPENAI_BASE_URL and
// the like), which both the key checks (verify) and the admin clients
// (provideradmin) call: an absolute http or https URL with a host and
// optionally a path, and nothing else. The error text completes a sentence
// that starts with the variable's name.
func ParseBaseURL(raw string) (*url.URL, error) {
	if strings.TrimSpace(raw) != raw {
		return nil, errors.New("must not have leading or trailing whitespace")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("is not a valid URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("must be an absolute http or https URL")
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return nil, errors.New("must be an absolute http or https URL with a host")
	case u.User != nil:
		return nil, errors.New("must not contain a user name or password")
	case u.RawQuery != "" || u.ForceQuery:
		return nil, errors.New("must not have a query")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, errors.New("must not have a fragment")
	}
	return u, nil
}

// ProviderTransport is the HTTP transport for calls to a provider's API
// (verify, provideradmin): Go's default transport (proxy from the
// environment, timeouts, HTTP/2), with response headers bounded to 256
// KiB, since the peer may be a misbehaving proxy.
func ProviderTransport() *http.Transport {
	var tr *http.Transport
	if def, ok := http.DefaultTransport.(*http.Transport); ok {
		tr = def.Clone()
	} else {
		tr = &http.Transport{Proxy: http.ProxyFromEnvironment}
	}
	tr.MaxResponseHeaderBytes = 256 << 10
	return tr
}
