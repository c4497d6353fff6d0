package store_test

import (
	"net/url"
	"strconv"

	"github.com/keyledger/keyledger"
)

// testLinks builds the addresses notifications carry as the web package
// does (web.Links, tested against the real routes in web/links_test.go),
// under a base URL.
type testLinks string

func (l testLinks) Key(id string) string { return string(l) + "/keys/" + id }

func (l testLinks) FailedSignIns() string {
	return string(l) + "/audit?action=" + url.QueryEscape(keyledger.ActionSignInFailed)
}

func (l testLinks) Leak(id int64) string { return string(l) + "/leaks/" + strconv.FormatInt(id, 10) }
