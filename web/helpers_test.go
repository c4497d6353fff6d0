package web_test

import (
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"time"
)

// actorOf is who as just signed in: a fresh proof, as a session has right
// after its password.
func actorOf(env *testEnv, who string) keyledger.Actor {
	return keyledger.Actor{User: env.Users[who], StepUpAt: time.Now()}
}

func storeFilter() store.KeyFilter { return store.KeyFilter{} }
