#!/usr/bin/env -S gpipe -f
# Compress a file and checksum it in the same pass: tee hands every byte
# both to gzip and to sha256sum, so the input is read only once.
#
# The checksum is of the uncompressed data, written as sha256sum writes it
# for stdin ("HASH  -"), so it checks the decompressed stream directly:
#
#   gpipe -f examples/checksum-compress.gp input=examples/app.log output=app.log.gz
#   gunzip -c app.log.gz | sha256sum -c app.log.gz.sha256     # -: OK
#
# gzip runs with -n, so the same input always gives the same bytes (no
# name or timestamp stored).

param input     # the file to compress
param output    # the gzip file to write; the checksum goes to OUTPUT.sha256
param level=6   # gzip's compression level, 1 (fastest) to 9 (smallest)

tee >(sha256sum > "$output.sha256") < "$input" | gzip -n -"$level" > "$output"
