// Package gpipetest adds commands to testscript
// (github.com/rogpeppe/go-internal/testscript) for testing command-line
// programs the way they are used: in pipelines, in the background,
// signalled, and checked for what they leave behind.
//
// testscript runs programs with exec, one at a time, without a shell. A
// script that needs a pipeline, a signal other than INT or KILL, an exact
// exit status, or to wait for a server to say it is ready, falls back on
// "exec sh -c '…'" and sleeps. This package gives it commands instead:
// pipelines in bash's syntax run by gpipe's engine inside the test process
// (no shell, no re-executed gpipe), any signal by name to a background
// command or its process group, exit statuses and signals checked by
// value, waits on a background command's output, and a check that nothing
// a command started is left running.
//
// # Adopting it
//
// Add two lines to the test file that runs your scripts: engine.Main in
// TestMain (gpipe's engine re-executes the test binary for the small
// guardian process that outlives nothing it started), and Setup on the
// testscript.Params:
//
//	func TestMain(m *testing.M) {
//		engine.Main()
//		testscript.Main(m, map[string]func(){"mytool": mytool.Main})
//	}
//
//	func TestScripts(t *testing.T) {
//		p := testscript.Params{Dir: "testdata/script"}
//		gpipetest.Setup(&p)
//		testscript.Run(t, p)
//	}
//
// A script then reads:
//
//	! pipe 'mytool serve' &srv&
//	waitout srv '^listening on'
//	pipe 'mytool get /metrics | grep -c ^req_'
//	stdout '^3$'
//	signal -HUP srv
//	waitout -stderr srv 'reloaded'
//	signal -TERM srv
//	await srv
//	status sig TERM
//	nochildren srv
//
// The server runs in the background, in a process group of its own; the
// script waits for it to say it listens rather than sleeping; a pipeline
// in bash's syntax queries it without a shell; it is reloaded and stopped
// by signals sent by name; it died of SIGTERM, as expected (the ! on its
// pipe line); and nothing it started is left.
//
// # Commands
//
// Every wait below ends at the script's deadline, which is the test's own
// (go test -timeout) less a tenth of the time left (at least seven
// seconds, for a teardown), so that a hang fails with what was waited
// for, and a loaded machine only makes the waits longer.
//
//	pipe [--status] SPEC [&NAME&]
//	pipe [--status] -f FILE [NAME=VALUE...] [&NAME&]
//
// Runs the pipeline SPEC, in bash's syntax ("seq 10 | grep 1 | wc -l",
// with redirections, process substitutions <(…) and >(…), $VAR and
// globs), or the pipeline file FILE with its parameters, as the gpipe
// command does, with the script's environment and in its current
// directory. Its standard input is empty (use "< file" in SPEC); its
// standard output and error become the script's stdout and stderr, which
// stdout, stderr and cmp then check. As with exec, the command fails when
// the pipeline's exit status is not 0, and with ! when it is. The exit
// status is gpipe's: that of the last stage that failed for its own
// reason (a broken pipe is not one), 126 or 127 for a program that cannot
// run, 2 for a builtin's bad usage. --status appends every stage's status
// to stderr, one line each ("gpipe: status: stage 2 (grep): 1"). With
// &NAME& the pipeline runs in the background; await ends it. Its stages
// run in a process group of their own, and their environment holds
// GPIPETEST_RUN=<an id of the run>, by which nochildren finds what they
// started. A pipeline still running at the script's deadline is torn
// down (SIGTERM to its process group and its stages, SIGKILL two seconds
// later) and the command fails, saying so. At the script's end, so is
// every background pipeline still running, and whatever any pipeline of
// the script left behind carrying its tag gets SIGTERM, then SIGKILL.
// Once its stages have ended, a pipeline's output is copied for one
// second more at most: a process it left behind (a daemon that kept its
// stdout) cannot hold the command; the script's log says when that
// happened.
//
//	await NAME
//
// Waits for the background pipeline NAME to end, which then counts as
// the script's last command: its output becomes stdout and stderr and
// its status is checked as pipe's would be (put ! on the pipe line, not
// on await). testscript's own wait waits for exec's commands only.
//
//	status N
//	status sig NAME
//
// Checks the exit status of the last pipe or await, or the signal that
// killed the stage whose status is the pipeline's (TERM, SIGTERM or 15);
// with !, that it is not that. testscript does not say how an exec ended,
// so status does not apply to exec.
//
//	signal [-SIG] [-group] NAME
//	signal [-SIG] -pidfile FILE
//
// Sends SIG (by default TERM) to the background command NAME: to every
// stage process of a pipeline started by pipe, or with -group to its
// whole process group; to the process of a command started by
// "exec … &NAME&" (which exec leaves in the test's own process group, so
// -group refuses it). A pipeline whose stages are all builtins running in
// the test process has no process to signal: it gets SIG as the gpipe
// command would (INT, TERM, HUP and QUIT tear it down). With
// -pidfile, SIG goes to every process whose pid FILE lists: a daemon's
// pid file, or one a stage wrote ("echo $$ > stage.pid").
//
//	waitout [-stderr] NAME REGEXP
//
// Waits until the standard output (or error) of the background pipeline
// NAME matches REGEXP, in multi-line mode (^ and $ match at each line).
// Only the lines after the previous waitout's match on that stream
// count: waiting twice for "reloaded" waits for two reloads. It fails
// at once when the pipeline ends without a match. testscript
// keeps the output of exec's background commands to itself until wait,
// so waitout watches pipe's only: "pipe 'mytool serve' &srv&" starts a
// program as exec would, without a shell.
//
//	waitfile [-lines N] [-match REGEXP] FILE
//
// Waits until FILE holds N lines (by default 1), or a match for REGEXP.
//
//	gone FILE
//
// Waits until no process whose pid FILE lists (one a line) still runs; a
// zombie counts as gone.
//
//	nochildren NAME
//
// Waits until no process carrying the GPIPETEST_RUN tag of the pipeline
// NAME, which has ended (await it first), still runs: what its stages
// started, daemons and setsid's among them, unless they cleared their
// environment. (While a pipeline runs, teardowns also reach its process
// group; once it has ended, the group's id may be another's.) It needs a
// pipeline started by pipe: exec does not say what its command started.
//
// # Conditions
//
//	[tty]            a terminal can be opened (/dev/tty): false under CI
//	[pipemax:SIZE]   a pipe can be given SIZE bytes (64KiB, 1MiB) of capacity
//	[builtin:NAME]   gpipe has a builtin NAME ("gpipe help" lists them)
//
// testscript's own [exec:PROG] says whether PROG is on the PATH.
//
// # What testscript keeps to itself
//
// testscript's API gives a command neither the script's environment as a
// whole nor the names of exec's background commands. The package reads
// both from its state, read-only, by reflection; its tests fail on a
// version of testscript that keeps them otherwise. With such a version,
// pipe runs with the test process's environment and signal finds only
// pipe's commands.
package gpipetest
