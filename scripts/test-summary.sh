#!/usr/bin/env bash
# The last lines of `make test`: which tests failed (read from cargo's output, kept
# in $1) and which skipped (the skipped-tests file $2, written by tests/support's
# `skip`: cargo shows a skipped test as "ok"). Exits 1 when anything failed.
#
#   scripts/test-summary.sh target/test-output.txt target/skipped-tests.txt CARGO_STATUS
set -u
out=$1 skipped=$2 status=${3:-0}

# "Running tests/x.rs (target/...)" names the file of the "test NAME ... FAILED"
# lines after it; "error: N targets failed:" lists the test files that failed as a
# whole (a crash, a failed build).
failed=$(awk '
    /^ *Running / { file = $2; if (file ~ /^unittests/) file = $3; gsub(/[()]/, "", file) }
    /^test .* \.\.\. FAILED$/ { name = $2; print "  " file ": " name }
' "$out" 2>/dev/null | sort -u)
targets=$(awk '
    /^error: [0-9]+ targets? failed:/ { on = 1; next }
    on && /^ +`/ { gsub(/^ +/, ""); print "  " $0; next }
    on { on = 0 }
' "$out" 2>/dev/null)
build_error=$(grep -m1 -E '^error(\[E[0-9]+\])?: ' "$out" 2>/dev/null | grep -v 'targets\? failed' || true)

echo
if [ -s "$skipped" ]; then
    echo "SKIPPED $(wc -l < "$skipped") tests: $(sort "$skipped" | paste -sd ';' - | sed 's/;/; /g')"
else
    echo "SKIPPED no tests"
fi
if [ -n "$failed" ]; then
    echo "FAILED $(printf '%s\n' "$failed" | wc -l) tests (output in $out):"
    printf '%s\n' "$failed"
fi
if [ -n "$targets" ]; then
    echo "FAILED test targets (rerun one with cargo test <target>):"
    printf '%s\n' "$targets"
fi
if [ "$status" != 0 ] && [ -z "$failed$targets" ]; then
    echo "FAILED: cargo test exited with status $status${build_error:+: $build_error}"
fi
if [ "$status" = 0 ] && [ -z "$failed$targets" ]; then
    echo "PASSED every test"
    exit 0
fi
exit 1
