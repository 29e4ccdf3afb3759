# mta-conf-keys.awk - the KEYS part of mta.conf(5), from
# config/mta.conf.example (which a unit test checks against the key table
# of config/config_keys.c, so the page cannot drift from the code).
# Each "[section]" becomes a subsection, each "key = default ; comment"
# line an entry, and a line holding only "; more" continues the comment.
# Commented-out sample lines (";host = ...") are left to the page's text.
function esc(s) {
	gsub(/\\/, "\\e", s)
	sub(/^[.']/, "\\\\\\&&", s)
	return s
}
/^\[[a-z]+\]/ {
	sect = $0
	sub(/\].*/, "]", sect)
	printf ".SS %s\n", esc(sect)
	next
}
/^[a-z_]+[ \t]*=/ {
	line = $0
	comment = ""
	if (match(line, /[ \t];/)) {
		comment = substr(line, RSTART + 2)
		line = substr(line, 1, RSTART - 1)
	}
	sub(/[ \t]+$/, "", line)
	key = line
	sub(/[ \t]*=.*/, "", key)
	val = line
	sub(/^[^=]*=[ \t]*/, "", val)
	sub(/^[ \t]+/, "", comment)
	printf ".TP\n.B %s\n", key
	if (val != "")
		printf "Default: \\fB%s\\fR.\n", esc(val)
	else
		printf "Default: empty.\n"
	if (comment != "")
		printf "%s\n", esc(comment)
	next
}
/^[ \t]+;/ {
	c = $0
	sub(/^[ \t]+;[ \t]*/, "", c)
	if (c != "")
		printf "%s\n", esc(c)
	next
}
