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
	// Concurrent lists with the same filter share the counts, and with
	// the same page too the page (coalescer: each still sees every write
	// made before it asked). Under load most of a list's work is shared.
	filter := fmt.Sprintf("%q", []string{f.Environment, f.OwnerEmail, f.Provider, f.Project, f.Q, f.Status})
	counts, err := s.keyGroupCounts.do(ctx, filter, func(ctx context.Context) (groupCounts, error) {
		return s.countKeyGroups(ctx, cond, args, f.Status == "archived")
	})
	if err != nil {
		return page, err
	}
	page.TotalGroups, page.Matching, page.All = counts.groups, counts.matching, counts.all
	pageKey := fmt.Sprintf("%s %q %v %d %d", filter, f.Sort, f.Desc, page.Page, page.PerPage)
	page.Groups, err = s.keyGroupPages.do(ctx, pageKey, func(ctx context.Context) ([]KeyGroup, error) {
		return s.keyGroupPage(ctx, f, cond, args, page.Page, page.PerPage)
	})
	return page, err
}

// groupCounts are a filter's counts: rows, matching keys, and all keys
// (live, or archived for the archived status).
type groupCounts struct{ groups, matching, all int }

func (s *Store) countKeyGroups(ctx context.Context, cond string, args []any, archived bool) (groupCounts, error) {
	var c groupCounts
	all := "archived_at IS NULL"
	if archived {
		all = "archived_at IS NOT NULL"
	}
	// One index-only pass (keys_env_group_idx, keys_group_idx) counts
	// both groups and keys.
	err := s.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(x.n), 0), (SELECT count(*) FROM keys WHERE `+all+`)
		FROM (SELECT count(*) AS n FROM keys k`+cond+` GROUP BY k.name_key, k.project) x`, args...).Scan(&c.groups, &c.matching, &c.all)
	if err != nil {
		return c, s.internal(ctx, "count key groups", err)
	}
	return c, nil
}

// keyGroupPage reads one page of groups with their matching keys.
func (s *Store) keyGroupPage(ctx context.Context, f KeyFilter, cond string, args []any, pageNo, perPage int) ([]KeyGroup, error) {
	dir, agg := "ASC", "min"
	if f.Desc {
		dir, agg = "DESC", "max"
	}
	var join, order string
	switch f.Sort {
	case "", "name":
		order = fmt.Sprintf("k.name_key %s, k.project %s", dir, dir)
	case "project":
		order = fmt.Sprintf("lower(k.project) %s, k.project %s, k.name_key", dir, dir)
	default:
		col, ok := keySorts[f.Sort]
		if !ok {
			order = fmt.Sprintf("k.name_key %s, k.project %s", dir, dir)
			break
		}
		switch f.Sort {
		case "environment":
			join = " JOIN environments e ON e.id = k.environment_id"
		case "owner":
			join = " JOIN users o ON o.id = k.owner_id"
		}
		order = fmt.Sprintf("%s(%s) %s NULLS LAST, k.name_key, k.project", agg, col, dir)
	}
	offset := (pageNo - 1) * perPage
	args = append(args[:len(args):len(args)], perPage, offset)
	// g is the page's groups: by name, an index-only walk of
	// keys_env_group_idx or keys_group_idx that stops at the page. Then
	// the groups' matching keys, numbered by their group's place.
	q := `WITH g AS (SELECT k.name_key, k.project, row_number() OVER (ORDER BY ` + order + `) AS n
			FROM keys k` + join + cond + ` GROUP BY k.name_key, k.project ORDER BY ` + order +
		fmt.Sprintf(" LIMIT $%d OFFSET $%d)", len(args)-1, len(args)) + `
		SELECT g.n, ` + strings.TrimPrefix(keySelect, "SELECT ") + `
		JOIN g ON g.name_key = k.name_key AND g.project = k.project` + cond + `
		ORDER BY g.n, e.position, k.name_clash, k.id`
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, s.internal(ctx, "list key groups", err)
	}
	defer rows.Close()
	var groups []KeyGroup
	for rows.Next() {
		var n int
		k, err := scanKey(withLeading{rows, []any{&n}})
		if err != nil {
			return nil, s.internal(ctx, "list key groups", err)
		}
		// n numbers the groups of the whole list; the page starts after
		// its offset.
		for i := n - offset; i > len(groups); {
			groups = append(groups, KeyGroup{Name: k.Name, Project: k.Project})
		}
		g := &groups[len(groups)-1]
		g.Keys = append(g.Keys, *k)
	}
	if err := rows.Err(); err != nil {
		return nil, s.internal(ctx, "list key groups", err)
	}
	return groups, nil
}

// withLeading scans leading columns into pre, then the rest as usual.
type withLeading struct {
	pgx.Row
	pre []any
}

func (r withLeading) Scan(dest ...any) error { return r.Row.Scan(append(r.pre, dest...)...) }
