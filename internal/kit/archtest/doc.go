// Package archtest holds the house's import rules as a test (see
// shared/ARCHITECTURE.md, "Rules of the house"): dependencies point
// inward, the Lambda functions link no embedded store, bench or kit, and
// production code imports no test kit. It has no code of its own; the
// rules read the module's package graph from `go list -deps -json`.
package archtest
