package web_test

import (
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

func actorOf(env *testEnv, who string) keyledger.Actor {
	return keyledger.Actor{User: env.Users[who]}
}

func storeFilter() store.KeyFilter { return store.KeyFilter{} }
