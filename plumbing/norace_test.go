//go:build !race

package plumbing

const raceEnabled = false
