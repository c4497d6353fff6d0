package wire

// ExportRequest is POST /export, named like the export form. Format is
// json when left out.
type ExportRequest struct {
	Environment string `json:"environment"`
	Project     string `json:"project,omitempty"`
	Format      string `json:"format,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// Export answers POST /export: the rendered file, which variable came from
// which key, and the keys left out with the reason. `keyledger env` and
// `keyledger run` read it.
type Export struct {
	Environment string           `json:"environment"`
	Format      string           `json:"format"`
	Content     string           `json:"content"`
	Variables   []ExportVariable `json:"variables"`
	LeftOut     []ExportLeftOut  `json:"left_out"`
}

// ExportVariable is one variable of an export.
type ExportVariable struct {
	Name    string `json:"name"`
	KeyID   string `json:"key_id"`
	KeyName string `json:"key_name"`
	Project string `json:"project"`
}

// ExportLeftOut is a key an export left out, and why.
type ExportLeftOut struct {
	KeyID   string `json:"key_id"`
	Name    string `json:"name"`
	Project string `json:"project"`
	Reason  string `json:"reason"`
}
