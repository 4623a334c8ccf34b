#!/usr/bin/env -S gpipe -f
# Parallel map: run a command as several copies over the lines of a file,
# each copy upper-casing what it gets, their outputs merged into one
# stream.
#
# par deals the file to the copies in whole-line blocks of at least BLOCK
# bytes, each block to the copy with the least still to do, so a slow
# copy gets less; its merge takes whole lines from the copies as they
# come, so a line is never torn, but the order between blocks depends on
# which copy is faster. The result is sorted, which makes it the same on
# every run: replace `sort` to keep the arrival order.
#
# --explain shows the copies as stages 1.1, 1.2, 1.3 of the par stage.
# Change the command after -- to map something else.
#
#   gpipe -f examples/parallel-map.gp input=examples/words.txt jobs=3

param input         # the file whose lines are mapped
param jobs=3        # how many copies run at once
param block=128KiB  # how much a copy is dealt at a time, at least (from 4KiB)

par -j "$jobs" --block "$block" -- tr a-z A-Z < "$input" | LC_ALL=C sort
