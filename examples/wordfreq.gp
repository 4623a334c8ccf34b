#!/usr/bin/env -S gpipe -f
# Word frequencies: the most common words of a text file, most frequent
# first, with their counts (as `uniq -c` prints them); words as frequent
# as each other come in alphabetical order.
#
# A word is a run of ASCII letters; case is folded. The sort stages run
# under LC_ALL=C so that the order is the same whatever the caller's locale.
#
#   gpipe -f examples/wordfreq.gp input=README.md top=5

param input      # the text file to count the words of
param top=10     # how many words to print

tr -cs A-Za-z '\n' < "$input" |
	tr A-Z a-z |
	LC_ALL=C sort |
	uniq -c |
	LC_ALL=C sort -k1,1nr -k2 |
	head -n "$top"
