package store

// ChainLock is the advisory lock key the audit chainer takes, so tests can
// play "another replica is chaining right now".
const ChainLock = chainLock
