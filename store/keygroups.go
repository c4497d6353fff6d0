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
	// "of 42 keys": the live keys, counted once for all concurrent
	// requests; archived keys (rarely listed) are counted in the statement.
	total := "(SELECT count(*) FROM keys WHERE archived_at IS NOT NULL)"
	if f.Status != "archived" {
		if page.All, err = s.liveKeyCount(ctx); err != nil {
			return page, err
		}
		total = "NULL::bigint"
	}

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
	args = append(args, page.PerPage, (page.Page-1)*page.PerPage)
	// One statement, in one snapshot: g is the page's groups (by name,
	// an index-only walk of keys_env_group_idx or keys_group_idx that
	// stops at the page), cnt the number of groups and of matching keys
	// (one more index-only pass), then the page's keys. The counts come
	// with every key row, and alone on one row when the page is empty.
	q := `WITH g AS (SELECT k.name_key, k.project, row_number() OVER (ORDER BY ` + order + `) AS n
			FROM keys k` + join + cond + ` GROUP BY k.name_key, k.project ORDER BY ` + order +
		fmt.Sprintf(" LIMIT $%d OFFSET $%d)", len(args)-1, len(args)) + `,
		cnt AS (SELECT count(*) AS groups, coalesce(sum(x.n), 0) AS matching, ` + total + ` AS total
			FROM (SELECT count(*) AS n FROM keys k` + cond + ` GROUP BY k.name_key, k.project) x)
		SELECT cnt.groups, cnt.matching, cnt.total, p.* FROM cnt LEFT JOIN LATERAL (
			SELECT g.n, e.position AS pos, k.name_clash AS clash, k.id AS kid, ` + strings.TrimPrefix(keySelect, "SELECT ") + `
			JOIN g ON g.name_key = k.name_key AND g.project = k.project` + cond + `) p ON true
		ORDER BY p.n, p.pos, p.clash, p.kid`
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return page, s.internal(ctx, "list key groups", err)
	}
	defer rows.Close()
	var archived *int
	for rows.Next() {
		var (
			n, pos *int64
			clash  *int
			kid    *[16]byte
		)
		if rows.RawValues()[3] == nil {
			// The empty page's lone row: counts only (nil skips a column).
			dest := make([]any, len(rows.FieldDescriptions()))
			dest[0], dest[1], dest[2] = &page.TotalGroups, &page.Matching, &archived
			if err := rows.Scan(dest...); err != nil {
				return page, s.internal(ctx, "list key groups", err)
			}
			continue
		}
		k, err := scanKey(withLeading{rows, []any{&page.TotalGroups, &page.Matching, &archived, &n, &pos, &clash, &kid}})
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
	if archived != nil {
		page.All = *archived
	}
	return page, nil
}

// liveKeyCount counts live keys; concurrent key lists share one count.
func (s *Store) liveKeyCount(ctx context.Context) (int, error) {
	return s.liveKeys.do(ctx, func(ctx context.Context) (int, error) {
		var n int
		if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM keys WHERE archived_at IS NULL").Scan(&n); err != nil {
			return 0, s.internal(ctx, "count keys", err)
		}
		return n, nil
	})
}

// withLeading scans leading columns into pre, then the rest as usual.
type withLeading struct {
	pgx.Row
	pre []any
}

func (r withLeading) Scan(dest ...any) error { return r.Row.Scan(append(r.pre, dest...)...) }
