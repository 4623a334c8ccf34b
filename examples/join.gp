#!/usr/bin/env -S gpipe -f
# Join two files on a key field, as a database joins two tables: each
# output line is the key, then the other fields of the left line, then
# those of the right one. Lines whose key is in only one file are left out.
#
# join needs both inputs sorted on the key; the two sorts run at once, each
# in a process substitution, and nothing is written to disk. Every stage
# runs under LC_ALL=C, so that sort and join agree on the order whatever
# the caller's locale. Fields are separated by blanks.
#
#   gpipe -f examples/join.gp left=examples/prices.txt right=examples/colours.txt

param left    # the first file
param right   # the second file
param key=1   # the number of the key field, in both files

LC_ALL=C join -1 "$key" -2 "$key" \
	<(LC_ALL=C sort -k "$key,$key" "$left") \
	<(LC_ALL=C sort -k "$key,$key" "$right")
