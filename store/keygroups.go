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
	// One statement counts (rows, matching keys, all keys) and picks the
	// page's groups; counting and paging read the same snapshot.
	q := `WITH m AS MATERIALIZED (SELECT k.name_key, k.project` + sortCol + ` FROM keys k` + join + cond + `),
		g AS (SELECT name_key, project, row_number() OVER (ORDER BY ` + order + `) AS n
			FROM m GROUP BY name_key, project ORDER BY n` +
		fmt.Sprintf(" LIMIT $%d OFFSET $%d)", len(args)-1, len(args)) + `
		SELECT (SELECT count(*) FROM (SELECT DISTINCT name_key, project FROM m) d), (SELECT count(*) FROM m),
			(SELECT count(*) FROM keys k` + all + `),
			ARRAY(SELECT name_key FROM g ORDER BY n), ARRAY(SELECT project FROM g ORDER BY n)`
	var nameKeys, projects []string
	if err := s.pool.QueryRow(ctx, q, args...).Scan(&page.TotalGroups, &page.Matching, &page.All, &nameKeys, &projects); err != nil {
		return page, s.internal(ctx, "list key groups", err)
	}
	if len(nameKeys) == 0 {
		return page, nil
	}
	page.Groups = make([]KeyGroup, len(nameKeys))
	for i := range nameKeys {
		page.Groups[i].Project = projects[i]
	}
	args = args[:len(args)-2]
	args = append(args, nameKeys, projects)
	// The page's keys, each tagged with its group's place on the page.
	q = "SELECT g.n, " + strings.TrimPrefix(keySelect, "SELECT ") +
		fmt.Sprintf(" JOIN unnest($%d::text[], $%d::text[]) WITH ORDINALITY AS g(name_key, project, n)", len(args)-1, len(args)) +
		" ON g.name_key = k.name_key AND g.project = k.project" + cond + " ORDER BY g.n, e.position, k.name_clash, k.id"
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return page, s.internal(ctx, "list key groups", err)
	}
	defer rows.Close()
	for rows.Next() {
		var n int64
		k, err := scanKey(numbered{rows, &n})
		if err != nil {
			return page, s.internal(ctx, "list key groups", err)
		}
		g := &page.Groups[n-1]
		if len(g.Keys) == 0 {
			g.Name = k.Name
		}
		g.Keys = append(g.Keys, *k)
	}
	if err := rows.Err(); err != nil {
		return page, s.internal(ctx, "list key groups", err)
	}
	return page, nil
}

// numbered scans a leading ordinal column into n, then the rest as usual.
type numbered struct {
	pgx.Row
	n *int64
}

func (r numbered) Scan(dest ...any) error { return r.Row.Scan(append([]any{r.n}, dest...)...) }
