package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
)

// ExportResult is what an export hands out and what it left out.
type ExportResult struct {
	Environment keyledger.Environment
	Entries     []keyledger.ExportEntry
	// File is the rendered download.
	File []byte
	// Refused are keys of the environment the actor may not reveal, with
	// the policy's reason.
	Refused []RefusedKey
}

// RefusedKey is a key left out of an export.
type RefusedKey struct {
	Key    keyledger.Key
	Reason string
}

// ExportKeys reveals every live key of an environment (optionally one
// project) that actor may reveal, for a download. Each key exported is
// audited as an export (it counts as a reveal in the offboarding record),
// in the same transaction: if the audit cannot be written, nothing is
// exported.
// A value the format cannot carry is left out with its reason (in Refused
// and at the top of the file) and not audited: it was not handed out.
func (s *Store) ExportKeys(ctx context.Context, actor keyledger.Actor, envName, project, reason string, format keyledger.ShellFormat) (ExportResult, error) {
	var out ExportResult
	if actor.User == nil {
		return out, keyledger.Errorf(keyledger.EUNAUTHORIZED, "Please sign in.")
	}
	if err := keyledger.CheckScope(actor, keyledger.ScopeReveal); err != nil {
		return out, err
	}
	envName = keyledger.NormalizeEnvironmentName(envName)
	project = strings.TrimSpace(project)
	var values [][]byte
	defer func() {
		for _, v := range values {
			clear(v)
		}
	}()
	err := s.write(ctx, func(tx pgx.Tx, t *touched) error {
		var status, role string
		var tokenLive bool
		if err := tx.QueryRow(ctx, "SELECT status, role, "+tokenLiveSQL+" FROM users a WHERE id = $1",
			actor.User.ID, actorTokenID(actor), s.now()).Scan(&status, &role, &tokenLive); err != nil {
			return fmt.Errorf("re-read actor: %w", err)
		}
		if !tokenLive {
			return ErrBadToken
		}
		u := *actor.User
		u.Status, u.Role = keyledger.UserStatus(status), keyledger.Role(role)
		actor.User = &u
		if !u.Active() {
			return keyledger.Errorf(keyledger.EFORBIDDEN, "Your account is deactivated.")
		}
		env, err := scanEnv(tx.QueryRow(ctx, "SELECT "+envColumns+" FROM environments WHERE name = $1", envName))
		if err == pgx.ErrNoRows {
			return &keyledger.Error{Code: keyledger.EINVALID, Message: "Choose an environment.",
				Fields: map[string]string{"environment": fmt.Sprintf("There is no environment named %q.", envName)}}
		}
		if err != nil {
			return err
		}
		out.Environment = env
		if err := keyledger.CheckStepUp(actor, env, s.now()); err != nil {
			return err
		}
		if reason, err = keyledger.CheckReason(reason, env.ReasonRequired); err != nil {
			return err
		}
		q := keySelect + " WHERE k.archived_at IS NULL AND k.environment_id = $1"
		args := []any{env.ID}
		if project != "" {
			q += " AND k.project = $2"
			args = append(args, project)
		}
		rows, err := tx.Query(ctx, q+" ORDER BY k.project, k.name_key, k.id", args...)
		if err != nil {
			return err
		}
		keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (keyledger.Key, error) {
			k, err := scanKey(r)
			if err != nil {
				return keyledger.Key{}, err
			}
			return *k, nil
		})
		if err != nil {
			return err
		}
		var allowed []keyledger.Key
		for _, k := range keys {
			if err := keyledger.CanReveal(actor.User, env, k.OwnerID); err != nil {
				out.Refused = append(out.Refused, RefusedKey{Key: k, Reason: keyledger.ErrorMessage(err)})
				continue
			}
			allowed = append(allowed, k)
		}
		keyVersions := map[string]int{}
		for _, k := range allowed {
			keyVersions[k.ID] = k.CurrentVersion
			var e crypto.Envelope
			if err := tx.QueryRow(ctx, `SELECT coalesce(kek_id, ''), wrapped_dek, nonce, ciphertext FROM key_versions
				WHERE key_id = $1 AND version = $2 AND destroyed_at IS NULL`, k.ID, k.CurrentVersion).
				Scan(&e.KEKID, &e.WrappedDEK, &e.Nonce, &e.Ciphertext); err != nil {
				return fmt.Errorf("read key %s: %w", k.ID, err)
			}
			v, err := s.keyring.Open(versionSubject(k.ID, k.CurrentVersion), e)
			if err != nil {
				// One damaged envelope must not withhold the rest of the
				// environment: the key is left out with its reason,
				// audited, and logged for an admin (its id; the error
				// names no value).
				s.log.ErrorContext(ctx, "key version does not decrypt; left out of an export", "key_id", k.ID, "version", k.CurrentVersion, "err", err)
				out.Refused = append(out.Refused, RefusedKey{Key: k, Reason: keyledger.ReasonDamaged})
				if err := writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionKeyValueDamaged, KeyID: k.ID, KeyName: k.Name,
					KeyVersion: k.CurrentVersion, Environment: env.Name, Details: map[string]any{"during": "export"}}); err != nil {
					return err
				}
				continue
			}
			values = append(values, v)
			out.Entries = append(out.Entries, keyledger.ExportEntry{KeyID: k.ID, KeyName: k.Name, Project: k.Project, Provider: k.Provider, Value: string(v)})
		}
		// Names are assigned over every revealed key, so a variable is
		// called the same whichever format leaves a neighbour out.
		keyledger.AssignVarNames(out.Entries)
		var damaged []keyledger.LeftOut
		for _, r := range out.Refused {
			if r.Reason == keyledger.ReasonDamaged {
				damaged = append(damaged, keyledger.LeftOut{KeyID: r.Key.ID, KeyName: r.Key.Name, Project: r.Key.Project, Reason: r.Reason})
			}
		}
		rendered, err := keyledger.RenderExport(format, out.Entries, damaged...)
		if err != nil {
			return err
		}
		out.File = rendered.File
		// A key the format cannot carry is left out like a refused one:
		// it was not handed out, so it is not audited as an export.
		unwritable := map[string]string{}
		for _, l := range rendered.Unwritable {
			unwritable[l.KeyID] = l.Reason
		}
		for _, k := range allowed {
			if reason, ok := unwritable[k.ID]; ok {
				out.Refused = append(out.Refused, RefusedKey{Key: k, Reason: reason})
			}
		}
		out.Entries = rendered.Carried
		for _, e := range out.Entries {
			if err := writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionKeyExport, KeyID: e.KeyID, KeyName: e.KeyName,
				KeyVersion: keyVersions[e.KeyID], Environment: env.Name, Reason: reason,
				Details: map[string]any{"project_filter": project}}); err != nil {
				return err
			}
		}
		*t = touchedUser(actor, s.now(), actor.User.ID)
		return nil
	})
	if err != nil {
		return ExportResult{}, s.internal(ctx, "export "+envName, err)
	}
	return out, nil
}

// ExportPreview lists, without revealing anything, which keys an export
// of the environment would include and which policy leaves out.
func (s *Store) ExportPreview(ctx context.Context, actor keyledger.Actor, envName, project string) (ExportPreview, error) {
	var out ExportPreview
	if !actor.User.Active() {
		return out, keyledger.Errorf(keyledger.EFORBIDDEN, "Your account is deactivated.")
	}
	env, err := s.Environment(ctx, envName)
	if keyledger.ErrorCode(err) == keyledger.ENOTFOUND {
		return out, &keyledger.Error{Code: keyledger.EINVALID, Message: "Choose an environment.",
			Fields: map[string]string{"environment": fmt.Sprintf("There is no environment named %q.", keyledger.NormalizeEnvironmentName(envName))}}
	}
	if err != nil {
		return out, err
	}
	out.Environment = env
	for n := 1; ; n++ {
		page, err := s.ListKeys(ctx, actor, KeyFilter{Environment: env.Name, Project: strings.TrimSpace(project), Sort: "project", PerPage: 200, Page: n})
		if err != nil {
			return out, err
		}
		for _, k := range page.Keys {
			if err := keyledger.CanReveal(actor.User, env, k.OwnerID); err != nil {
				out.Refused = append(out.Refused, RefusedKey{Key: k, Reason: keyledger.ErrorMessage(err)})
			} else {
				out.Included = append(out.Included, k)
			}
		}
		if n >= page.Pages() {
			break
		}
	}
	// Keys whose stored value no longer decrypts will be left out, and
	// some values some formats cannot carry: say so before the download,
	// not only in it.
	damaged, problems, err := s.checkExportValues(ctx, out.Included)
	if err != nil {
		return out, err
	}
	out.FormatProblems = problems
	if len(damaged) > 0 {
		kept := out.Included[:0]
		for _, k := range out.Included {
			if damaged[k.ID] {
				out.Refused = append(out.Refused, RefusedKey{Key: k, Reason: keyledger.ReasonDamaged})
				continue
			}
			kept = append(kept, k)
		}
		out.Included = kept
	}
	return out, nil
}

// checkExportValues reports which of keys' current versions no longer
// decrypt, and which export formats cannot carry the others (by key id).
// The values are opened only to check them and cleared at once; nothing
// is revealed (a problem names a character class, and only to someone who
// may reveal the key), so nothing is audited here.
func (s *Store) checkExportValues(ctx context.Context, keys []keyledger.Key) (map[string]bool, map[string][]keyledger.FormatProblem, error) {
	if len(keys) == 0 {
		return nil, nil, nil
	}
	ids := make([]string, len(keys))
	versions := make([]int32, len(keys))
	for i, k := range keys {
		ids[i], versions[i] = k.ID, int32(k.CurrentVersion)
	}
	rows, err := s.pool.Query(ctx, `SELECT v.key_id::text, v.version, coalesce(v.kek_id, ''), v.wrapped_dek, v.nonce, v.ciphertext
		FROM key_versions v JOIN unnest($1::uuid[], $2::int[]) AS w(key_id, version) ON v.key_id = w.key_id AND v.version = w.version
		WHERE v.destroyed_at IS NULL`, ids, versions)
	if err != nil {
		return nil, nil, s.internal(ctx, "check export values", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	problems := map[string][]keyledger.FormatProblem{}
	for rows.Next() {
		var id string
		var version int
		var e crypto.Envelope
		if err := rows.Scan(&id, &version, &e.KEKID, &e.WrappedDEK, &e.Nonce, &e.Ciphertext); err != nil {
			return nil, nil, s.internal(ctx, "check export values", err)
		}
		v, err := s.keyring.Open(versionSubject(id, version), e)
		if err != nil {
			out[id] = true
			continue
		}
		if p := keyledger.ExportProblems(string(v)); len(p) > 0 {
			problems[id] = p
		}
		clear(v)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, s.internal(ctx, "check export values", err)
	}
	return out, problems, nil
}

// ExportPreview is what an export would hold.
type ExportPreview struct {
	Environment keyledger.Environment
	Included    []keyledger.Key
	Refused     []RefusedKey
	// FormatProblems are, by key id, the formats that will leave an
	// included key out, and why.
	FormatProblems map[string][]keyledger.FormatProblem
}
