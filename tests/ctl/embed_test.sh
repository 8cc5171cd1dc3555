#!/usr/bin/env bash
# ctl/page/embed.py: the page's real files embed; a style sheet or script that would end its
# element early (</style, </script, or <!-- in the script) or a template without exactly one
# slot for the data, the style and the script is refused with the file and the reason, and no
# output is written.
#   embed_test.sh EMBED_PY PAGE_DIR
set -uo pipefail
embed=$1 page=$2
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$page/flamegraph.html" "$page/flamegraph.css" "$page/flamegraph.js" "$work/"

python3 "$embed" "$work/ok.cc" "$work/flamegraph.html" "$work/flamegraph.css" "$work/flamegraph.js" ||
  fail "the page's own files are refused"
grep -q '^extern const char kFlamegraphPage\[\] =$' "$work/ok.cc" || fail "no kFlamegraphPage in the output"

# refused FILE_TO_BREAK HOW EXPECTED_MESSAGE
refused() {
  local file=$1 how=$2 expected=$3
  rm -rf "$work/case" && mkdir "$work/case"
  cp "$work"/flamegraph.* "$work/case/"
  python3 - "$work/case/$file" "$how" <<'PY'
import sys
path, how = sys.argv[1], sys.argv[2]
text = open(path, encoding='utf-8').read()
if how.startswith('append:'):
    text += how[len('append:'):] + '\n'
elif how.startswith('drop:'):
    text = text.replace(how[len('drop:'):], '', 1)
elif how.startswith('twice:'):  # the line holding the slot, twice
    slot = how[len('twice:'):]
    start = text.rindex('\n', 0, text.index(slot)) + 1
    end = text.index('\n', start) + 1
    text = text[:end] + text[start:end] + text[end:]
open(path, 'w', encoding='utf-8').write(text)
PY
  local msg
  msg=$(python3 "$embed" "$work/case/out.cc" "$work/case/flamegraph.html" "$work/case/flamegraph.css" \
        "$work/case/flamegraph.js" 2>&1) && fail "$file with $how was embedded"
  grep -qF -- "$expected" <<<"$msg" || fail "$file with $how: said '$msg', not '$expected'"
  grep -qF -- "$work/case/$file" <<<"$msg" || fail "$file with $how: the message does not name the file: $msg"
  [ ! -e "$work/case/out.cc" ] || fail "$file with $how: an output was written"
}
refused flamegraph.css 'append:/* </STYLE> */' 'contains "</style"'
refused flamegraph.js "append:var s = '</script>';" 'contains "</script"'
refused flamegraph.js "append:// <!-- a comment" 'contains "<!--"'
refused flamegraph.html 'drop:@PROFILE_DATA@' 'needs exactly one @PROFILE_DATA@'
refused flamegraph.html 'twice:@PROFILE_DATA@' 'needs exactly one @PROFILE_DATA@'
refused flamegraph.html 'drop:// @SCRIPT@' 'needs exactly one line "// @SCRIPT@"'
refused flamegraph.html 'twice:/* @STYLE@ */' 'needs exactly one line "/* @STYLE@ */"'

[ "$failures" = 0 ] && echo "embed: all checks passed"
exit $((failures > 0))
