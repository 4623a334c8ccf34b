// Package report renders what gpipe tells its users about a pipeline, for
// the command line and, where it has a use there, for Go programs: the
// plan that --explain prints (engine.Plan.Explain prints the same text),
// the plan as a Graphviz picture (--dot, --svg), the figures of a run
// (--stats, as a table or JSON), the edges' bytes while it runs
// (--progress), every stage's stderr with its label (--label-stderr),
// the stages' statuses (--status) and the live state that SIGUSR1 asks
// for.
//
// It reads the resolved plan (the graph, what runs each stage, each edge's
// transport) and the run's results, snapshots and events, and re-derives
// none of them. Parsing the command line and deciding the exit code stay
// in cmd/gpipe.
package report
