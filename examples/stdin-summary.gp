#!/usr/bin/env -S gpipe -f
# Keep a compressed copy of stdin and print a summary of it: its number
# of lines, its number of bytes and its SHA-256, separated by tabs.
#
# `@stdin` is gpipe's own stdin; read in four places here (gzip and three
# process substitutions), it is copied to each by a tee that gpipe adds,
# so the input can be a pipe read once.
#
#   seq 1000 | gpipe -f examples/stdin-summary.gp output=copy.gz

param output   # the gzip file the input is kept in

@stdin | gzip -n > "$output"

paste <(@stdin | wc -l) <(@stdin | wc -c) <(@stdin | sha256sum | cut -d ' ' -f 1)
