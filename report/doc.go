// Package report renders what gpipe tells its users about a pipeline:
// the plan that --explain prints, for the command line and for Go programs
// (gpipe.Plan.Explain) alike, so that both print the same text.
//
// It reads the resolved plan (the graph, what runs each stage, each edge's
// transport) and re-derives none of it. The other reports (--dot, --stats,
// --progress, stderr labels) still live in cmd/gpipe; they move here as
// the plan becomes one object (issue 18).
package report
