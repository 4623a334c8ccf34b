#!/usr/bin/env -S gpipe -f
# Log triage: pick the error lines of a log once, and use them three ways
# at the same time:
#   - every error line goes to a file;
#   - each distinct message, with how often it occurred, goes to another,
#     most frequent first (the timestamp, the first field, is left out);
#   - the first few error lines are shown on stdout.
#
# The stage named `errs` is read in three places; gpipe adds a tee that
# copies its output to all three, so the log is read only once.
# Exits 1 when the log has no error line at all (grep's status); the two
# files are then empty.
#
#   gpipe -f examples/logsplit.gp log=examples/app.log sample=3
#   gpipe -f examples/logsplit.gp log=examples/app.log levels='ERROR|WARN' sample=20

param log                      # the log file to read
param levels='ERROR|FATAL'     # the levels that count as errors (an extended regexp)
param errors=errors.log        # the file every error line goes to
param counts=error-counts.txt  # the file the count of each distinct message goes to
param sample=5                 # how many error lines to show on stdout

errs: grep -E " ($levels) " "$log"

@errs | sink "$errors"
@errs | cut -d ' ' -f 2- | LC_ALL=C sort | uniq -c | LC_ALL=C sort -rn > "$counts"
@errs | head -n "$sample"
