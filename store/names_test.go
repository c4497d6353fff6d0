package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/migrations"
	"github.com/keyledger/keyledger/store"
)

// TestKeyNamesUniqueAfterNormalization: a key name that only looks
// different (full-width letters, a ligature, another case) is the same
// name: the second registration is a conflict and nothing is stored.
func TestKeyNamesUniqueAfterNormalization(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	ctx := context.Background()
	m := f.user(t, "m@example.com", keyledger.RoleMember)
	in := func(name string) keyledger.KeyInput {
		return keyledger.KeyInput{Name: name, Project: "checkout", Environment: "development", OwnerEmail: m.Email,
			Value: "sk-proj-" + fmt.Sprintf("%032x", len(name)) + name[:1]}
	}
	f.key(t, m, in("openai file"))
	count := func() int {
		var n int
		if err := f.pool.QueryRow(ctx, "SELECT count(*) FROM keys").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count()
	for i, name := range []string{"OpenAI File", "ｏｐｅｎａｉ ｆｉｌｅ", "openai ﬁle", "ＯＰＥＮＡＩ file"} {
		v := in(name)
		v.Value = fmt.Sprintf("sk-proj-%040d", i)
		_, err := f.s.CreateKey(ctx, as(m), v)
		if keyledger.ErrorCode(err) != keyledger.ECONFLICT || keyledger.FieldErrors(err)["name"] == "" {
			t.Errorf("%q next to \"openai file\": %v, want a conflict on the name", name, err)
		}
	}
	if after := count(); after != before {
		t.Errorf("%d keys after refused look-alikes, want %d", after, before)
	}
	// Another project or environment is another name space.
	other := in("ｏｐｅｎａｉ ｆｉｌｅ")
	other.Project, other.Value = "billing", fmt.Sprintf("sk-proj-%040d", 99)
	f.key(t, m, other)
}

// TestNameKeyMigrationKeepsExistingRows: a database that already holds two
// live keys that collide only after normalization migrates, keeps both
// (names untouched, both listed), and refuses a third look-alike.
func TestNameKeyMigrationKeepsExistingRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := emptyDatabase(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	m, err := migrate.NewMigrator(ctx, conn, "schema_version")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		t.Fatal(err)
	}
	if err := m.MigrateTo(ctx, 6); err != nil {
		t.Fatal(err)
	}
	var uid int64
	if err := conn.QueryRow(ctx, `INSERT INTO users (email, name, role) VALUES ('o@example.com', 'O', 'member') RETURNING id`).Scan(&uid); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"openai", "ｏｐｅｎａｉ", "open\u200bai", "other"} {
		if _, err := conn.Exec(ctx, `INSERT INTO keys (name, provider, project, environment_id, owner_id, masked_hint, fingerprint, rotate_by, created_at)
			VALUES ($1, 'openai', 'checkout', (SELECT id FROM environments WHERE name = 'development'), $2, 'sk-…', $3, now() + interval '90 days', now() + make_interval(secs => $4))`,
			name, uid, []byte{byte(i)}, i); err != nil {
			t.Fatal(err)
		}
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := store.Migrate(ctx, pool); err != nil {
		t.Fatalf("migrating a database with look-alike names: %v", err)
	}
	rows, err := pool.Query(ctx, "SELECT name, name_key FROM keys WHERE archived_at IS NULL ORDER BY name_key, created_at")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var n, k string
		err := r.Scan(&n, &k)
		return n + "=" + k, err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint([]string{"openai=openai", "ｏｐｅｎａｉ=openai", "open\u200bai=openai", "other=other"})
	if fmt.Sprint(got) != want {
		t.Errorf("after migration: %q, want %q", got, want)
	}
	// A new look-alike is refused by the index.
	_, err = pool.Exec(ctx, `INSERT INTO keys (name, provider, project, environment_id, owner_id, masked_hint, fingerprint, rotate_by)
		VALUES ('OPENAI', 'openai', 'checkout', (SELECT id FROM environments WHERE name = 'development'), $1, 'sk-…', '\x09', now())`, uid)
	if err == nil {
		t.Error("a fourth look-alike was stored")
	}
}
