//go:build race

package plumbing

// raceEnabled: the race detector slows every ring operation several times
// over, so the longest stress tests do fewer runs.
const raceEnabled = true
