package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// KeyFilter narrows and orders the key list.
type KeyFilter struct {
	Environment string
	OwnerEmail  string
	Provider    string
	Project     string
	Q           string
	Status      string // overdue | due_soon | ok | failing | never_verified | orphaned | stale | archived
	Sort        string // name | project | environment | owner | provider | rotate_by | verified | created
	Desc        bool
	Page        int
	PerPage     int
	// AfterName and AfterID continue a listing by keyset, for the API's
	// cursor: only keys after (keyledger_name_key(AfterName), AfterID) in
	// name order (migration 010).
	// When AfterID is set the order is by name ascending whatever Sort
	// says, Page is ignored, and Total counts the matching keys from the
	// cursor on (so Total > len(Keys) means there is more).
	AfterName string
	AfterID   string
}

// KeyPage is one page of keys.
type KeyPage struct {
	Keys    []keyledger.Key
	Total   int
	Page    int
	PerPage int
}

// Pages is the number of pages.
func (p KeyPage) Pages() int {
	if p.PerPage == 0 || p.Total == 0 {
		return 1
	}
	return (p.Total + p.PerPage - 1) / p.PerPage
}

// KeySorts lists the accepted sort names.
func KeySorts() []string {
	return []string{"name", "project", "environment", "owner", "provider", "rotate_by", "verified", "created"}
}

// ListKeys lists keys matching f. Filters are parameters, never SQL text.
func (s *Store) ListKeys(ctx context.Context, actor keyledger.Actor, f KeyFilter) (KeyPage, error) {
	if !actor.User.Active() {
		return KeyPage{Page: f.Page, PerPage: f.PerPage}, keyledger.Errorf(keyledger.EFORBIDDEN, "Your account is deactivated.")
	}
	return s.listKeys(ctx, f)
}

// RotationGroup is one group of the rotation overview.
type RotationGroup struct {
	Status string // overdue | due_soon | ok
	Keys   []keyledger.Key
	Total  int
}

// RotationOverview is every live key by rotation status: the first
// RotationPerGroup of each group, soonest due first, and each group's size.
type RotationOverview struct {
	Groups []RotationGroup
}

// RotationOverview lists keys by rotation status. Everyone signed in sees
// the same overview, so concurrent requests share one computation.
func (s *Store) RotationOverview(ctx context.Context, actor keyledger.Actor) (RotationOverview, error) {
	if !actor.User.Active() {
		return RotationOverview{}, keyledger.Errorf(keyledger.EFORBIDDEN, "Your account is deactivated.")
	}
	// It shows keys and owners (the list epoch) and what is due (the time).
	return keptOr(ctx, s.keptRotations, &s.rotations, actor.Epochs.List, s.now(), func(ctx context.Context) (RotationOverview, error) {
		var o RotationOverview
		for _, status := range []string{"overdue", "due_soon", "ok"} {
			page, err := s.listKeys(ctx, KeyFilter{Status: status, Sort: "rotate_by", PerPage: RotationPerGroup})
			if err != nil {
				return o, err
			}
			o.Groups = append(o.Groups, RotationGroup{Status: status, Keys: page.Keys, Total: page.Total})
		}
		return o, nil
	})
}

func (s *Store) listKeys(ctx context.Context, f KeyFilter) (KeyPage, error) {
	page := KeyPage{Page: f.Page, PerPage: f.PerPage}
	if page.PerPage <= 0 || page.PerPage > 200 {
		page.PerPage = 50
	}
	if page.Page < 1 {
		page.Page = 1
	}
	where, args, err := s.keyConditions(ctx, f)
	if err != nil {
		return page, err
	}
	if f.AfterID != "" {
		if !isUUID(f.AfterID) {
			return page, &keyledger.Error{Code: keyledger.EINVALID, Message: "The cursor is not valid.",
				Fields: map[string]string{"cursor": "Use the next_cursor of a previous answer, unchanged."}}
		}
		args = append(args, f.AfterName, f.AfterID)
		where = append(where, fmt.Sprintf("(k.name_key, k.id) > (keyledger_name_key($%d), $%d::uuid)", len(args)-1, len(args)))
		f.Sort, f.Desc = "name", false
		page.Page = 1
	}
	cond := " WHERE " + strings.Join(where, " AND ")
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM keys k`+cond, args...).Scan(&page.Total); err != nil {
		return page, s.internal(ctx, "count keys", err)
	}
	order, ok := keySorts[f.Sort]
	if !ok {
		order = keySorts["name"]
	}
	dir := "ASC"
	if f.Desc {
		dir = "DESC"
	}
	args = append(args, page.PerPage, (page.Page-1)*page.PerPage)
	// The inner query picks the page's ids (an index walk for the usual
	// sorts); only those fifty rows are then joined and read.
	var join string
	switch f.Sort {
	case "environment":
		join = " JOIN environments e ON e.id = k.environment_id"
	case "owner":
		join = " JOIN users o ON o.id = k.owner_id"
	}
	orderBy := fmt.Sprintf(" ORDER BY %s %s NULLS LAST, k.id", order, dir)
	q := keySelect + " JOIN (SELECT k.id FROM keys k" + join + cond + orderBy +
		fmt.Sprintf(" LIMIT $%d OFFSET $%d) page ON page.id = k.id", len(args)-1, len(args)) + orderBy
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return page, s.internal(ctx, "list keys", err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (keyledger.Key, error) {
		k, err := scanKey(r)
		if err != nil {
			return keyledger.Key{}, err
		}
		return *k, nil
	})
	if err != nil {
		return page, s.internal(ctx, "list keys", err)
	}
	page.Keys = keys
	return page, nil
}

// keyConditions turns a filter into SQL conditions on keys k, with the
// values as parameters (never SQL text). The list and its grouped form
// share it, so a filter means the same in both.
func (s *Store) keyConditions(ctx context.Context, f KeyFilter) ([]string, []any, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "$?", fmt.Sprintf("$%d", len(args))))
	}
	if f.Status == "archived" {
		where = append(where, "k.archived_at IS NOT NULL")
	} else {
		where = append(where, "k.archived_at IS NULL")
	}
	// Conditions are on keys alone (names resolved by subqueries the
	// planner runs once), so the page is chosen from the keys indexes
	// before anything is joined.
	if f.Environment != "" {
		envID, err := s.environmentID(ctx, keyledger.NormalizeEnvironmentName(f.Environment))
		if err != nil {
			return nil, nil, err
		}
		add("k.environment_id = $?", envID)
	}
	if f.OwnerEmail != "" {
		add("k.owner_id = (SELECT id FROM users WHERE email = $?)", keyledger.NormalizeEmail(f.OwnerEmail))
	}
	if f.Provider != "" {
		add("k.provider = $?", strings.ToLower(strings.TrimSpace(f.Provider)))
	}
	if f.Project != "" {
		add("k.project = $?", strings.TrimSpace(f.Project))
	}
	if q := strings.TrimSpace(f.Q); q != "" {
		// Escape LIKE metacharacters so a search for "50%" means that.
		q = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(strings.ToLower(q))
		add(`(lower(k.name) LIKE '%' || $? || '%' OR lower(k.project) LIKE '%' || $? || '%' OR lower(k.description) LIKE '%' || $? || '%')`, q)
	}
	now := s.now()
	switch f.Status {
	case "overdue":
		add("k.rotate_by <= $?", now)
	case "due_soon":
		add("k.rotate_by > $?", now)
		add("k.rotate_by <= $?", now.Add(keyledger.DueSoonWindow))
	case "ok":
		add("k.rotate_by > $?", now.Add(keyledger.DueSoonWindow))
	case "failing":
		add("k.verify_result = ANY($?)", []string{keyledger.VerifyInvalid, keyledger.VerifyForbidden, keyledger.VerifyQuota})
	case "compromised":
		where = append(where, "EXISTS (SELECT 1 FROM leak_incidents li WHERE li.key_id = k.id AND li.closed_at IS NULL)")
	case "never_verified":
		where = append(where, "k.last_verified_at IS NULL")
	case "orphaned":
		add("k.owner_id IN (SELECT id FROM users WHERE status <> $?)", string(keyledger.UserActive))
	case "stale":
		add("k.created_at <= $?", now.Add(-StaleAfter))
		args = append(args, seenActions, now.Add(-StaleAfter))
		where = append(where, fmt.Sprintf("NOT EXISTS (SELECT 1 FROM audit_events a WHERE a.key_id = k.id AND a.action = ANY($%d) AND a.at > $%d)", len(args)-1, len(args)))
	}
	return where, args, nil
}

// KeyListMenus are the choices of the key list's filter menus.
type KeyListMenus struct {
	Environments []keyledger.Environment
	Owners       []keyledger.User
	Projects     []string
}

// KeyListMenus reads the filter menus. They are the same for everyone, so
// concurrent page views share one reading (coalescer), each still seeing
// every change made before it asked.
func (s *Store) KeyListMenus(ctx context.Context, actor keyledger.Actor) (KeyListMenus, error) {
	if !actor.User.Active() {
		return KeyListMenus{}, keyledger.Errorf(keyledger.EFORBIDDEN, "Your account is deactivated.")
	}
	return s.menus.do(ctx, func(ctx context.Context) (KeyListMenus, error) {
		var m KeyListMenus
		var err error
		if m.Environments, err = s.environments(ctx); err != nil {
			return m, err
		}
		if m.Owners, err = s.listUsers(ctx); err != nil {
			return m, err
		}
		m.Projects, err = s.projects(ctx)
		return m, err
	})
}

// Projects lists the distinct projects of live keys, for filter menus
// every active person sees.
func (s *Store) Projects(ctx context.Context, actor keyledger.Actor) ([]string, error) {
	if err := mayRead(actor, keyledger.CanUse); err != nil {
		return nil, err
	}
	return s.projects(ctx)
}

func (s *Store) projects(ctx context.Context) ([]string, error) {
	// A skip scan over keys_live_name_key (project first): one index
	// probe per project instead of reading every key.
	rows, err := s.pool.Query(ctx, `WITH RECURSIVE p(project) AS (
			(SELECT project FROM keys WHERE archived_at IS NULL ORDER BY project LIMIT 1)
			UNION ALL
			SELECT (SELECT k.project FROM keys k WHERE k.archived_at IS NULL AND k.project > p.project ORDER BY k.project LIMIT 1)
			FROM p WHERE p.project IS NOT NULL)
		SELECT project FROM p WHERE project IS NOT NULL`)
	if err != nil {
		return nil, s.internal(ctx, "list projects", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.internal(ctx, "list projects", err)
	}
	return out, nil
}

var keySorts = map[string]string{
	"name":        "k.name_key",
	"project":     "lower(k.project)",
	"environment": "e.position",
	"owner":       "o.email",
	"provider":    "k.provider",
	"rotate_by":   "k.rotate_by",
	"verified":    "k.last_verified_at",
	"created":     "k.created_at",
}
