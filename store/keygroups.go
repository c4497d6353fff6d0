package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// KeyGroup is one row of the key list: the keys that share a name (after
// normalization, as the unique index compares names) and a project, one
// per environment. People ask "is the checkout OpenAI key fine
// everywhere?", not "show me row 31 of 42".
type KeyGroup struct {
	// Name is the name of the group's first key as it was typed.
	Name    string
	Project string
	// Keys are the group's keys that match the filter, in the
	// environments' configured order.
	Keys []keyledger.Key
}

// KeyGroupPage is one page of the grouped key list.
type KeyGroupPage struct {
	Groups []KeyGroup
	// TotalGroups is the number of rows of the whole filtered list.
	TotalGroups int
	// Matching is the number of keys the filter matches, All the number
	// the list holds unfiltered (live keys; archived ones for the
	// archived status): "5 of 42 keys".
	Matching, All int
	Page, PerPage int
}

// Pages is the number of pages of rows.
func (p KeyGroupPage) Pages() int {
	if p.PerPage == 0 || p.TotalGroups == 0 {
		return 1
	}
	return (p.TotalGroups + p.PerPage - 1) / p.PerPage
}

// ListKeyGroups lists the keys matching f grouped by name and project,
// a page of groups at a time. It takes the same filter as ListKeys; a
// group lists only its matching keys. Sorting by a key column orders the
// groups by their first key in that order (the last, descending).
func (s *Store) ListKeyGroups(ctx context.Context, actor keyledger.Actor, f KeyFilter) (KeyGroupPage, error) {
	page := KeyGroupPage{Page: max(f.Page, 1), PerPage: f.PerPage}
	if page.PerPage <= 0 || page.PerPage > 200 {
		page.PerPage = 50
	}
	if !actor.User.Active() {
		return page, keyledger.Errorf(keyledger.EFORBIDDEN, "Your account is deactivated.")
	}
	where, args, err := s.keyConditions(ctx, f)
	if err != nil {
		return page, err
	}
	cond := " WHERE " + strings.Join(where, " AND ")
	// The unfiltered count keeps only the live-or-archived condition,
	// which keyConditions always puts first.
	all := " WHERE " + where[0]

	dir, agg := "ASC", "min"
	if f.Desc {
		dir, agg = "DESC", "max"
	}
	var join, sortCol, order string
	switch f.Sort {
	case "", "name":
		order = fmt.Sprintf("name_key %s, project %s", dir, dir)
	case "project":
		order = fmt.Sprintf("lower(project) %s, project %s, name_key", dir, dir)
	default:
		col, ok := keySorts[f.Sort]
		if !ok {
			order = fmt.Sprintf("name_key %s, project %s", dir, dir)
			break
		}
		switch f.Sort {
		case "environment":
			join = " JOIN environments e ON e.id = k.environment_id"
		case "owner":
			join = " JOIN users o ON o.id = k.owner_id"
		}
		sortCol = ", " + col + " AS s"
		order = fmt.Sprintf("%s(s) %s NULLS LAST, name_key, project", agg, dir)
	}
	args = append(args, page.PerPage, (page.Page-1)*page.PerPage)
	// One statement: m is the matching keys (the filter is evaluated
	// once), g the page's groups, cnt the counts (rows, matching keys,
	// all keys), read in one snapshot. The counts come with every key row,
	// and alone on one row when the page is empty.
	q := `WITH m AS MATERIALIZED (SELECT k.id, k.name_key, k.project` + sortCol + ` FROM keys k` + join + cond + `),
		g AS (SELECT name_key, project, row_number() OVER (ORDER BY ` + order + `) AS n
			FROM m GROUP BY name_key, project ORDER BY n` + fmt.Sprintf(" LIMIT $%d OFFSET $%d)", len(args)-1, len(args)) + `,
		cnt AS (SELECT (SELECT count(*) FROM (SELECT DISTINCT name_key, project FROM m) d) AS groups,
			(SELECT count(*) FROM m) AS matching, (SELECT count(*) FROM keys k` + all + `) AS total)
		SELECT cnt.groups, cnt.matching, cnt.total, p.* FROM cnt LEFT JOIN LATERAL (
			SELECT g.n, e.position AS pos, k.name_clash AS clash, k.id AS kid, ` + strings.TrimPrefix(keySelect, "SELECT ") + `
			JOIN m ON m.id = k.id JOIN g ON g.name_key = m.name_key AND g.project = m.project) p ON true
		ORDER BY p.n, p.pos, p.clash, p.kid`
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return page, s.internal(ctx, "list key groups", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			n, pos *int64
			clash  *int
			kid    *[16]byte
		)
		if rows.RawValues()[3] == nil {
			// The empty page's lone row: counts only (nil skips a column).
			dest := make([]any, len(rows.FieldDescriptions()))
			dest[0], dest[1], dest[2] = &page.TotalGroups, &page.Matching, &page.All
			if err := rows.Scan(dest...); err != nil {
				return page, s.internal(ctx, "list key groups", err)
			}
			continue
		}
		k, err := scanKey(withLeading{rows, []any{&page.TotalGroups, &page.Matching, &page.All, &n, &pos, &clash, &kid}})
		if err != nil {
			return page, s.internal(ctx, "list key groups", err)
		}
		// n numbers the groups of the whole list; the page starts after
		// its offset.
		i := int(*n) - (page.Page-1)*page.PerPage
		for i > len(page.Groups) {
			page.Groups = append(page.Groups, KeyGroup{Name: k.Name, Project: k.Project})
		}
		g := &page.Groups[i-1]
		g.Keys = append(g.Keys, *k)
	}
	if err := rows.Err(); err != nil {
		return page, s.internal(ctx, "list key groups", err)
	}
	return page, nil
}

// withLeading scans leading columns into pre, then the rest as usual.
type withLeading struct {
	pgx.Row
	pre []any
}

func (r withLeading) Scan(dest ...any) error { return r.Row.Scan(append(r.pre, dest...)...) }
