package templates

import (
	"sort"
	"strings"

	"github.com/a-h/templ"
)

// invalid marks a field whose name has an error: aria-invalid="true" and
// aria-describedby pointing at the error's id. A field without an error
// gets neither, because aria-invalid="" means "not invalid" and a
// describedby that points at nothing is noise for a screen reader.
func invalid(errs map[string]string, name string) templ.Attributes {
	return invalidIf(has(errs, name), "err-"+name)
}

// invalidIf is invalid for forms that keep each error in its own field.
func invalidIf(bad bool, errID string) templ.Attributes {
	if !bad {
		return templ.Attributes{}
	}
	return templ.Attributes{"aria-invalid": "true", "aria-describedby": errID}
}

// summaryItem is one line of an error summary: the message, linked to the
// field it is about when there is one.
type summaryItem struct {
	FieldID string
	Message string
}

// summaryItems lists errs in the order of fields, each written "name" or
// "name=id" when the field's DOM id differs from its form name. Errors of
// names not listed come last, unlinked, in a stable order.
func summaryItems(errs map[string]string, fields []string) []summaryItem {
	var items []summaryItem
	seen := map[string]bool{}
	for _, f := range fields {
		name, id, ok := strings.Cut(f, "=")
		if !ok {
			id = name
		}
		if msg := errs[name]; msg != "" && !seen[name] {
			items = append(items, summaryItem{FieldID: id, Message: msg})
		}
		seen[name] = true
	}
	var rest []string
	for name, msg := range errs {
		if !seen[name] && msg != "" {
			rest = append(rest, name)
		}
	}
	sort.Strings(rest)
	for _, name := range rest {
		items = append(items, summaryItem{Message: errs[name]})
	}
	return items
}

// nonEmpty drops the names whose message is empty, for views that keep
// each error in its own string field.
func nonEmpty(errs map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range errs {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// offboardingTableLabel names an offboarding list's scroll region.
func offboardingTableLabel(testid string) string {
	if strings.HasPrefix(testid, "completed") {
		return "Completed offboardings"
	}
	return "Open offboardings"
}
