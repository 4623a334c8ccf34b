#!/usr/bin/env -S gpipe -f
# Parallel map: deal the lines of a file to three workers, each upper-casing
# what it gets, and merge their output back into one stream.
#
# split deals CHUNK whole lines to each worker in turn; merge takes whole
# lines from the three as they arrive, so a line is never torn, but the
# order between chunks depends on which worker is faster. The result is
# sorted, which makes it the same on every run: replace `sort` to keep
# the arrival order.
#
# The workers are named stages: `>(@w1)` hands split's first output to w1,
# `<(@w1)` hands w1's output to merge. Change the workers' command (or add
# a w4) to map something else.
#
#   gpipe -f examples/parallel-map.gp input=examples/words.txt chunk=100

param input       # the file whose lines are mapped
param chunk=1000  # how many lines each worker gets at a time

split -n "$chunk" >(@w1) >(@w2) >(@w3) < "$input"

w1: tr a-z A-Z
w2: tr a-z A-Z
w3: tr a-z A-Z

merge <(@w1) <(@w2) <(@w3) | LC_ALL=C sort
