#!/bin/sh
# Lists every Rust function in src/ (or the given paths) longer than N lines, longest
# first: "LINES FILE:LINE NAME". Length runs from the `fn` line to its closing brace.
#
#   scripts/long-functions.sh           # N = 60, over src/
#   scripts/long-functions.sh 80        # the hard limit
#   scripts/long-functions.sh 40 src/server benches
#
# Braces are counted outside comments, string literals (raw ones included, also
# across lines) and char literals, so `"{"` or `'}'` do not end a function. A trait
# method without a body (`fn f();`) is not a function here. Exits 0 always; prints
# "none over N lines" when there is nothing to list.
set -eu
limit=${1:-60}
[ $# -gt 0 ] && shift
[ $# -eq 0 ] && set -- src
find "$@" -name '*.rs' -type f | sort | while read -r file; do
    awk -v limit="$limit" -v file="$file" '
    function push(name, line) { sp++; sname[sp] = name; sline[sp] = line; sdepth[sp] = depth }
    {
        line = $0; n = length(line); i = 1
        while (i <= n) {
            c = substr(line, i, 1)
            if (block > 0) {
                if (substr(line, i, 2) == "*/") { block--; i += 2; continue }
                if (substr(line, i, 2) == "/*") { block++; i += 2; continue }
                i++; continue
            }
            if (instr) {
                if (c == "\\") { i += 2; continue }
                if (c == "\"") instr = 0
                i++; continue
            }
            if (inraw) {
                close_ = "\"" hashes
                if (substr(line, i, length(close_)) == close_) { inraw = 0; i += length(close_); continue }
                i++; continue
            }
            if (substr(line, i, 2) == "//") break
            if (substr(line, i, 2) == "/*") { block++; i += 2; continue }
            if (c == "\"") {
                # a raw string: r"..", r#".."#, br#".."# (the r is just before)
                j = i - 1; h = ""
                while (j > 0 && substr(line, j, 1) == "#") { h = h "#"; j-- }
                if (j > 0 && substr(line, j, 1) == "r" && (j == 1 || substr(line, j - 1, 1) !~ /[A-Za-z0-9_]/ || substr(line, j - 1, 1) == "b")) {
                    inraw = 1; hashes = h; i++; continue
                }
                instr = 1; i++; continue
            }
            if (c == "\x27") {
                rest = substr(line, i, 12)
                if (rest ~ /^\x27\\u\{[0-9a-fA-F]+\}\x27/) { match(rest, /^\x27\\u\{[0-9a-fA-F]+\}\x27/); i += RLENGTH; continue }
                if (rest ~ /^\x27\\.\x27/) { i += 4; continue }
                if (rest ~ /^\x27[^\\]\x27/) { i += 3; continue }
                i++; continue  # a lifetime
            }
            if (c == "f" && substr(line, i, 3) == "fn " && (i == 1 || substr(line, i - 1, 1) !~ /[A-Za-z0-9_]/)) {
                rest = substr(line, i + 3)
                if (match(rest, /^[A-Za-z_][A-Za-z0-9_]*/)) {
                    pending = substr(rest, 1, RLENGTH); pline = NR; pdepth = depth
                    i += 3 + RLENGTH; continue
                }
            }
            if (c == ";" && pending != "" && depth == pdepth) pending = ""
            if (c == "{") {
                if (pending != "" && depth == pdepth) { push(pending, pline); pending = "" }
                depth++
            }
            if (c == "}") {
                depth--
                if (sp > 0 && depth == sdepth[sp]) {
                    len = NR - sline[sp] + 1
                    if (len > limit) printf "%d %s:%d %s\n", len, file, sline[sp], sname[sp]
                    sp--
                }
            }
            i++
        }
    }' "$file"
done | sort -rn | awk -v limit="$limit" '{ print; n++ } END { if (n == 0) print "none over " limit " lines" }'
