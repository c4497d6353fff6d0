package store

// Statement is a statement as the tests see it: its text, and how many
// values its scan takes (Dests) or it is given (Args).
type Statement struct {
	Name, SQL   string
	Dests, Args int
}

// PairedStatements are the statements that come as a plain one-row form
// and a batched form, pairwise: the two must read or write the same
// columns in the same order.
func PairedStatements() [][2]Statement {
	var r revealRow
	var s sessionRow
	var ord int64
	revealDests := len(revealDests(&ord, &r))
	sessionDests := len(sessionDests(&ord, &s))
	var row auditRow
	batch := auditBatchArgs([]auditRow{row})
	return [][2]Statement{
		{{"revealSelect", revealSelect, revealDests, 5}, {"revealBatchSelect", revealBatchSelect, revealDests, 5}},
		{{"sessionSelect", sessionSelect, sessionDests, 1}, {"sessionBatchSelect", sessionBatchSelect, sessionDests, 1}},
		// The single and batched inserts take one more parameter than the
		// columns: the status the actor must still have (auditStatusParam).
		{{"auditSingleInsert", auditSingleInsert, 1, len(row.args()) + 1}, {"auditBatchInsert", auditBatchInsert, 1, len(batch) + 1}},
		{{"auditInsert", auditInsert, 0, len(row.args())}, {"auditSingleInsert", auditSingleInsert, 1, len(row.args()) + 1}},
	}
}
