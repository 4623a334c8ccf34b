#!/usr/bin/env -S gpipe -f
# Throughput on rings: a pipeline of gpipe's own builtins only, which run
# inside gpipe and hand data to each other through in-process rings,
# without a system call per block. It prints how many of the lines
# 1..LINES match PATTERN, exactly as `seq LINES | grep PATTERN | wc -l`.
#
# Time it against bash, and against other transports:
#
#   time gpipe -f examples/throughput.gp
#   time sh -c 'seq 10000000 | grep 7 | wc -l'
#   time gpipe -f examples/throughput.gp lines=100000000     # ten times as many
#   time gpipe --isolate -f examples/throughput.gp           # shm rings
#   time gpipe --transport pipe -f examples/throughput.gp    # pipes
#   gpipe -f examples/throughput.gp --explain                # the plan

param lines=10000000   # how many lines gen makes: 1, 2, … LINES
param pattern=7        # the RE2 regexp a line must match to be counted

gen -n "$lines" | filter "$pattern" | cat | count
