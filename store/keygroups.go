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
	// Every group of the filter, in list order, with the counts: one
	// index-only pass (keys_env_group_idx, keys_group_idx), shared by
	// concurrent lists with the same filter and order (coalescer: each
	// still sees every write made before it asked). A page is then a
	// slice of it, and only its keys are read.
	order, join := groupOrder(f)
	key := fmt.Sprintf("%q", []string{f.Environment, f.OwnerEmail, f.Provider, f.Project, f.Q, f.Status, order})
	idx, err := s.keyGroupIndexes.do(ctx, key, func(ctx context.Context) (groupIndex, error) {
		return s.keyGroupIndex(ctx, cond, args, order, join, f.Status == "archived")
	})
	if err != nil {
		return page, err
	}
	page.TotalGroups, page.Matching, page.All = len(idx.nameKeys), idx.matching, idx.all
	from := min((page.Page-1)*page.PerPage, len(idx.nameKeys))
	to := min(from+page.PerPage, len(idx.nameKeys))
	page.Groups, err = s.keyGroupPage(ctx, cond, args, idx.nameKeys[from:to], idx.projects[from:to])
	return page, err
}

// groupOrder is the ORDER BY of groups for f's sort, and the join it needs.
func groupOrder(f KeyFilter) (order, join string) {
	dir, agg := "ASC", "min"
	if f.Desc {
		dir, agg = "DESC", "max"
	}
	switch f.Sort {
	case "project":
		return fmt.Sprintf("lower(k.project) %s, k.project %s, k.name_key", dir, dir), ""
	case "environment":
		join = " JOIN environments e ON e.id = k.environment_id"
	case "owner":
		join = " JOIN users o ON o.id = k.owner_id"
	}
	col, ok := keySorts[f.Sort]
	if !ok || f.Sort == "name" {
		return fmt.Sprintf("k.name_key %s, k.project %s", dir, dir), ""
	}
	return fmt.Sprintf("%s(%s) %s NULLS LAST, k.name_key, k.project", agg, col, dir), join
}

// groupIndex is every group of a filter in list order, and the counts:
// matching keys and all keys (live, or archived for the archived status).
type groupIndex struct {
	nameKeys, projects []string
	matching, all      int
}

func (s *Store) keyGroupIndex(ctx context.Context, cond string, args []any, order, join string, archived bool) (groupIndex, error) {
	var x groupIndex
	all := "archived_at IS NULL"
	if archived {
		all = "archived_at IS NOT NULL"
	}
	err := s.pool.QueryRow(ctx, `SELECT coalesce(array_agg(g.name_key ORDER BY g.i), '{}'), coalesce(array_agg(g.project ORDER BY g.i), '{}'),
			coalesce(sum(g.n), 0), (SELECT count(*) FROM keys WHERE `+all+`)
		FROM (SELECT k.name_key, k.project, count(*) AS n, row_number() OVER (ORDER BY `+order+`) AS i
			FROM keys k`+join+cond+` GROUP BY k.name_key, k.project) g`, args...).Scan(&x.nameKeys, &x.projects, &x.matching, &x.all)
	if err != nil {
		return x, s.internal(ctx, "list key groups", err)
	}
	return x, nil
}

// keyGroupPage reads the matching keys of the page's groups, in order.
func (s *Store) keyGroupPage(ctx context.Context, cond string, args []any, nameKeys, projects []string) ([]KeyGroup, error) {
	args = append(args[:len(args):len(args)], nameKeys, projects)
	q := "SELECT g.n, " + strings.TrimPrefix(keySelect, "SELECT ") +
		fmt.Sprintf(" JOIN unnest($%d::text[], $%d::text[]) WITH ORDINALITY AS g(name_key, project, n)", len(args)-1, len(args)) +
		" ON g.name_key = k.name_key AND g.project = k.project" + cond + " ORDER BY g.n, e.position, k.name_clash, k.id"
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, s.internal(ctx, "list key groups", err)
	}
	defer rows.Close()
	groups := make([]KeyGroup, len(nameKeys))
	for rows.Next() {
		var n int
		k, err := scanKey(withLeading{rows, []any{&n}})
		if err != nil {
			return nil, s.internal(ctx, "list key groups", err)
		}
		g := &groups[n-1]
		if len(g.Keys) == 0 {
			g.Name, g.Project = k.Name, k.Project
		}
		g.Keys = append(g.Keys, *k)
	}
	if err := rows.Err(); err != nil {
		return nil, s.internal(ctx, "list key groups", err)
	}
	// A group whose keys changed since the index was read (archived,
	// renamed) has none now: leave it out rather than show an empty row.
	out := groups[:0]
	for _, g := range groups {
		if len(g.Keys) > 0 {
			out = append(out, g)
		}
	}
	return out, nil
}

// withLeading scans leading columns into pre, then the rest as usual.
type withLeading struct {
	pgx.Row
	pre []any
}

func (r withLeading) Scan(dest ...any) error { return r.Row.Scan(append(r.pre, dest...)...) }
