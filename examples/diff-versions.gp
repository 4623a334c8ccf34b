#!/usr/bin/env -S gpipe -f
# Which lines of a file are repeated: the diff between the file sorted and
# the file sorted without duplicates. Every extra copy of a line shows as a
# "< line" of the diff.
#
# The input is read by one named stage, src, and used twice: gpipe copies
# its output to both sorts. src could as well be a slow command (a
# download, a query); it still runs once.
# Exits 1 when some line is repeated and 0 when none is (diff's status).
#
#   gpipe -f examples/diff-versions.gp input=examples/names.txt

param input   # the file to look for repeated lines in

src: cat "$input"

diff <(@src | LC_ALL=C sort) <(@src | LC_ALL=C sort -u)
