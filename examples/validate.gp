#!/usr/bin/env -S gpipe -f
# Validate comma-separated records read on stdin: the records with the
# right number of fields go, sorted, to a file; the others are reported on
# stdout with their line number.
#
# The checker writes the good records to its stdout and the rejects to its
# descriptor 3; `@check:3 | …` reads that descriptor, as `3> >(…)` would
# in bash, without a temporary file.
#
#   gpipe -f examples/validate.gp good=clean.csv < examples/orders.csv

param good       # the file the valid records go to, sorted
param fields=3   # how many fields a valid record has

@stdin | check: awk -F , -v n="$fields" 'NF == n { print; next } { print NR ": " $0 > "/dev/fd/3" }'

@check | LC_ALL=C sort > "$good"
@check:3 | sed 's/^/rejected line /'
