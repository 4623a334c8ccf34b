#!/usr/bin/env -S gpipe -f
# Every kind of edge in one pipeline, chosen by transport marks: a mark
# between two stages (`a | @fifo | b`) sets the transport of that edge,
# and one at the start of a process substitution, `>(@fifo | …)`, makes
# the stage get a named FIFO's path instead of /dev/fd/N.
#
# It keeps the lines of 1..LINES that hold a 7, writes their SHA-256 to
# DIGEST and prints how many there are. See each edge's transport, and why,
# with:
#
#   gpipe -f examples/transports.gp --explain
#
# @mem and @shm need builtins at both ends; a stage next to an @shm edge
# runs in a process of its own, so it cannot also have an @mem edge.

param lines=100000        # how many lines gen makes
param digest=digest.txt   # the file the SHA-256 of the kept lines goes to

gen -n "$lines" | @mem |                   # in-process ring: gen and filter run inside gpipe
	filter 7 | @pipe |                     # anonymous pipe, though both ends are builtins
	cat | @fifo |                          # named FIFO in a private directory
	tee >(@fifo | sha256sum > "$digest") | # sha256sum gets the FIFO's path as its argument
	@shm |                                 # shared-memory ring: tee and count run as processes
	count
