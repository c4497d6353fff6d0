package web

import (
	"errors"
	"net/http"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// sessionUserKey holds the signed-in *keyledger.User in Session.Values. It
// is filled from the database on every request, never serialized: the
// cookie carries only the signed session id.
const sessionUserKey = "user"

// sessionStateKey holds the store.SessionState of a loaded session.
const sessionStateKey = "state"

// SessionStore is a gorilla/sessions Store whose state lives in Postgres.
// The cookie holds a signed random id; the row (looked up by the id's hash)
// holds the user and the timeouts, so deleting the row kills the session
// wherever the cookie was copied to.
type SessionStore struct {
	store    *store.Store
	codec    securecookie.Codec
	options  sessions.Options
	name     string
	timeouts store.SessionTimeouts
	clientIP func(*http.Request) string
}

var _ sessions.Store = (*SessionStore)(nil)

// NewSessionStore returns a session store signing cookies with key.
func NewSessionStore(st *store.Store, key []byte, secure bool, t store.SessionTimeouts, clientIP func(*http.Request) string) *SessionStore {
	codec := securecookie.New(key, nil)
	codec.MaxAge(int(t.Absolute.Seconds()))
	codec.SetSerializer(securecookie.JSONEncoder{})
	name := "keyledger_session"
	if secure {
		name = "__Host-keyledger_session"
	}
	return &SessionStore{
		store: st,
		codec: codec,
		name:  name,
		options: sessions.Options{
			Path:     "/",
			MaxAge:   int(t.Absolute.Seconds()),
			Secure:   secure,
			HttpOnly: true,
			// Lax, not Strict: a link to a key pasted in chat should open
			// signed in. State changes are POSTs with a CSRF token anyway.
			SameSite: http.SameSiteLaxMode,
		},
		timeouts: t,
		clientIP: clientIP,
	}
}

// Name is the session cookie's name.
func (s *SessionStore) Name() string { return s.name }

// Get returns the request's cached session.
func (s *SessionStore) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(s, name)
}

// New loads the session named by the cookie, or returns a new empty one
// when there is no valid cookie or the server-side session is gone.
func (s *SessionStore) New(r *http.Request, name string) (*sessions.Session, error) {
	sess := sessions.NewSession(s, name)
	opts := s.options
	sess.Options = &opts
	sess.IsNew = true
	ck, err := r.Cookie(name)
	if err != nil {
		return sess, nil
	}
	var id string
	if err := s.codec.Decode(name, ck.Value, &id); err != nil {
		return sess, nil
	}
	st, err := s.store.Session(r.Context(), id, s.timeouts)
	if errors.Is(err, store.ErrNoSession) {
		return sess, nil
	}
	if err != nil {
		return sess, err
	}
	sess.ID = id
	sess.IsNew = false
	sess.Values[sessionStateKey] = st
	if !st.PendingTOTP {
		sess.Values[sessionUserKey] = st.User
	}
	return sess, nil
}

// Fresh returns a new, empty session (for sign-in).
func (s *SessionStore) Fresh() *sessions.Session {
	sess := sessions.NewSession(s, s.name)
	opts := s.options
	sess.Options = &opts
	sess.IsNew = true
	return sess
}

// Save starts a server-side session for a new session holding a user,
// or ends it when Options.MaxAge < 0.
func (s *SessionStore) Save(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
	meta := keyledger.Actor{IP: s.clientIP(r), UserAgent: r.UserAgent()}
	u, _ := sess.Values[sessionUserKey].(*keyledger.User)
	if sess.Options.MaxAge < 0 {
		if sess.ID != "" {
			meta.User = u
			if err := s.store.EndSession(r.Context(), meta, sess.ID); err != nil {
				return err
			}
		}
		http.SetCookie(w, sessions.NewCookie(sess.Name(), "", sess.Options))
		return nil
	}
	if sess.ID == "" {
		if u == nil {
			return nil
		}
		id, err := s.store.StartSession(r.Context(), meta, u, s.timeouts)
		if err != nil {
			return err
		}
		sess.ID = id
	}
	encoded, err := s.codec.Encode(sess.Name(), sess.ID)
	if err != nil {
		return err
	}
	http.SetCookie(w, sessions.NewCookie(sess.Name(), encoded, sess.Options))
	return nil
}
