package wire_test

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger/web/wire"
)

// described are the wire types; each is the components schema of the same
// name in web/openapi.json, or (ErrorBody, ExportVariable, ExportLeftOut,
// WhoamiToken) a schema written inline where its parent uses it.
var described = []any{
	wire.Error{}, wire.ErrorBody{},
	wire.Owner{}, wire.Key{}, wire.KeyVersion{}, wire.KeyDetail{}, wire.KeyList{},
	wire.KeyCreateRequest{}, wire.KeyCreated{}, wire.RevealRequest{}, wire.Revealed{},
	wire.RotateRequest{}, wire.VerifyResult{},
	wire.Environment{}, wire.EnvironmentList{}, wire.AuditEvent{}, wire.AuditList{},
	wire.ExportRequest{}, wire.Export{}, wire.ExportVariable{}, wire.ExportLeftOut{},
	wire.Whoami{}, wire.WhoamiToken{},
	wire.LeakCheckRequest{}, wire.LeakCheckResult{}, wire.LeakHit{},
	wire.Inventory{}, wire.InventoryCounts{}, wire.InventoryItem{}, wire.InventoryCandidate{},
	wire.LeakReportRequest{}, wire.LeakReport{},
	wire.ProviderConnection{}, wire.ProviderConnectionList{}, wire.ProviderConnectionCreateRequest{}, wire.ProviderSync{},
	wire.ProviderRevokeRequest{}, wire.ProviderRevoked{}, wire.InventoryLinkRequest{},
	wire.KeyAtProvider{}, wire.LinkedKey{}, wire.UsageDay{}, wire.RotationStatus{}, wire.AutoRotateRequest{},
}

// inline are the types described inside their parent's schema rather than
// under components.
var inline = map[string]bool{"ErrorBody": true, "ExportVariable": true, "ExportLeftOut": true, "WhoamiToken": true}

// TestOpenAPIMatchesWireTypes compares each wire type with its schema in
// web/openapi.json: the same property names; the JSON type the Go type
// encodes to; nullable exactly for pointers; required exactly for fields
// without omitempty; no additional properties; and no format a value could
// fail (date-time only for time.Time, int64 only for int64, uuid only for
// ids). A difference fails with one line per property.
func TestOpenAPIMatchesWireTypes(t *testing.T) {
	data, err := os.ReadFile("../openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	c := &checker{schemas: doc.Components.Schemas, seen: map[string]bool{}}
	for _, v := range described {
		rt := reflect.TypeOf(v)
		if inline[rt.Name()] {
			continue
		}
		s, ok := c.schemas[rt.Name()]
		if !ok {
			c.errorf("wire.%s: no schema #/components/schemas/%s in openapi.json", rt.Name(), rt.Name())
			continue
		}
		c.object(rt.Name(), rt, s)
	}
	for name := range c.schemas {
		if !slices.ContainsFunc(described, func(v any) bool { return reflect.TypeOf(v).Name() == name }) {
			c.errorf("#/components/schemas/%s: no wire type of that name (add one to web/wire and to described)", name)
		}
	}
	for _, v := range described {
		if n := reflect.TypeOf(v).Name(); !c.seen[n] {
			c.errorf("wire.%s: not reached from any schema of openapi.json", n)
		}
	}
	if len(c.diffs) > 0 {
		sort.Strings(c.diffs)
		t.Errorf("web/openapi.json and web/wire differ (%d):\n  %s", len(c.diffs), strings.Join(c.diffs, "\n  "))
	}
}

// TestDescribedListsEveryWireType keeps the list above complete: every
// exported struct type of the package is in it, so a new body cannot skip
// the comparison.
func TestDescribedListsEveryWireType(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var declared []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, s := range g.Specs {
				if ts, ok := s.(*ast.TypeSpec); ok && ts.Name.IsExported() {
					declared = append(declared, ts.Name.Name)
				}
			}
		}
	}
	if len(declared) < 10 {
		t.Fatalf("found only %v; is the test looking at the package?", declared)
	}
	for _, n := range declared {
		if !slices.ContainsFunc(described, func(v any) bool { return reflect.TypeOf(v).Name() == n }) {
			t.Errorf("wire.%s is not in described: add it, and its schema to web/openapi.json", n)
		}
	}
}

type checker struct {
	schemas map[string]map[string]any
	seen    map[string]bool
	diffs   []string
}

func (c *checker) errorf(format string, args ...any) {
	c.diffs = append(c.diffs, fmt.Sprintf(format, args...))
}

// field is a JSON property of a Go struct, embedded structs flattened as
// encoding/json does.
type field struct {
	name      string
	typ       reflect.Type
	omitempty bool
}

func jsonFields(rt reflect.Type) []field {
	var out []field
	for i := range rt.NumField() {
		f := rt.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, field{name: name, typ: f.Type, omitempty: slices.Contains(strings.Split(opts, ","), "omitempty")})
	}
	return out
}

// object compares struct type rt with object schema s; at names the place.
func (c *checker) object(at string, rt reflect.Type, s map[string]any) {
	c.seen[rt.Name()] = true
	if s["type"] != "object" {
		c.errorf("%s: type %v, want object (wire.%s)", at, s["type"], rt.Name())
		return
	}
	if s["additionalProperties"] != false {
		c.errorf("%s: additionalProperties must be false (wire.%s has a fixed set of fields)", at, rt.Name())
	}
	props, _ := s["properties"].(map[string]any)
	var required []string
	if r, ok := s["required"]; ok {
		list, _ := r.([]any)
		if len(list) == 0 {
			c.errorf(`%s: "required": [] is not valid OpenAPI 3.0; leave required out`, at)
		}
		for _, x := range list {
			required = append(required, fmt.Sprint(x))
		}
	}
	fields := jsonFields(rt)
	for _, f := range fields {
		p, ok := props[f.name].(map[string]any)
		if !ok {
			c.errorf("%s.%s: wire.%s has the field, the document does not", at, f.name, rt.Name())
			continue
		}
		if want, got := !f.omitempty, slices.Contains(required, f.name); want != got {
			if want {
				c.errorf("%s.%s: always sent (no omitempty), so it must be listed in required", at, f.name)
			} else {
				c.errorf("%s.%s: optional (omitempty), so it must not be listed in required", at, f.name)
			}
		}
		c.value(at+"."+f.name, f.name, f.typ, p)
	}
	for name := range props {
		if !slices.ContainsFunc(fields, func(f field) bool { return f.name == name }) {
			c.errorf("%s.%s: the document has the property, wire.%s does not", at, name, rt.Name())
		}
	}
	for _, r := range required {
		if _, ok := props[r]; !ok {
			c.errorf("%s: required lists %q, which is not a property", at, r)
		}
	}
}

var (
	timeType = reflect.TypeFor[time.Time]()
	rawType  = reflect.TypeFor[json.RawMessage]()
)

// value compares the Go type of a property (name is its JSON name) with
// its schema.
func (c *checker) value(at, name string, rt reflect.Type, s map[string]any) {
	nullable := s["nullable"] == true
	if rt.Kind() == reflect.Pointer {
		if !nullable {
			c.errorf("%s: a pointer in Go (it may be null), so the schema needs nullable: true", at)
		}
		rt = rt.Elem()
	} else if nullable {
		c.errorf("%s: nullable in the document, but not a pointer in Go (never null)", at)
	}
	if ref, ok := s["$ref"].(string); ok {
		target := strings.TrimPrefix(ref, "#/components/schemas/")
		if rt.Kind() != reflect.Struct || rt.Name() != target {
			c.errorf("%s: $ref %s, but the Go type is %s", at, ref, rt)
		}
		return
	}
	typ, _ := s["type"].(string)
	format, _ := s["format"].(string)
	want, wantFormat := "", ""
	switch {
	case rt == timeType:
		want, wantFormat = "string", "date-time"
	case rt == rawType:
		want = "object"
		if s["additionalProperties"] == false {
			c.errorf("%s: free-form JSON in Go, so additionalProperties must not be false", at)
		}
	case rt.Kind() == reflect.String:
		want = "string"
		if format == "uuid" && (name == "id" || strings.HasSuffix(name, "_id")) {
			wantFormat = "uuid"
		}
	case rt.Kind() == reflect.Int64:
		want, wantFormat = "integer", "int64"
	case rt.Kind() == reflect.Int:
		want = "integer"
	case rt.Kind() == reflect.Bool:
		want = "boolean"
	case rt.Kind() == reflect.Slice:
		want = "array"
		if typ == "array" {
			items, _ := s["items"].(map[string]any)
			c.value(at+"[]", name, rt.Elem(), items)
		}
	case rt.Kind() == reflect.Map && rt.Key().Kind() == reflect.String:
		want = "object"
		if typ == "object" {
			items, _ := s["additionalProperties"].(map[string]any)
			if items == nil {
				c.errorf("%s: a map in Go, so additionalProperties must be its values' schema", at)
			} else {
				c.value(at+"{}", name, rt.Elem(), items)
			}
		}
	case rt.Kind() == reflect.Struct:
		if !inline[rt.Name()] {
			c.errorf("%s: inline object, but wire.%s has its own schema: use $ref", at, rt.Name())
		}
		c.object(at, rt, s)
		return
	default:
		c.errorf("%s: Go type %s has no JSON mapping in this test", at, rt)
		return
	}
	if typ != want {
		c.errorf("%s: type %q in the document, Go %s encodes to %q", at, typ, rt, want)
	}
	if format != wantFormat {
		switch {
		case format == "email":
			c.errorf(`%s: format "email" would make clients refuse real addresses (the bootstrap admin is admin@localhost); leave the format out`, at)
		case format != "":
			c.errorf("%s: format %q is not implied by Go %s (only date-time for time.Time, int64 for int64, uuid for ids)", at, format, rt)
		default:
			c.errorf("%s: Go %s is format %q in the document", at, rt, wantFormat)
		}
	}
}
