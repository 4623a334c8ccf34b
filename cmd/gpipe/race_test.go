//go:build race

package main

// raceEnabled: a race-enabled gpipe reserves terabytes of shadow memory,
// so the scripts that set "ulimit -v" skip under -race ([race]).
const raceEnabled = true
