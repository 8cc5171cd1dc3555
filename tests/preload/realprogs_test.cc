// Real programs behave the same under the preload: python3, git, gcc (and the program it
// builds), sqlite3. Same stdout, same stderr, same exit status; every process they start is
// preloaded too (RSR_FOLLOW_CHILDREN defaults to true).
#include <unistd.h>

#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>

#include "harness.h"

namespace {

using rt::RunResult;
using rt::Spawn;
using rt::TempDir;

constexpr int kTimeoutMs = 90000;

std::string first_difference(const std::string& a, const std::string& b) {
  std::istringstream sa(a), sb(b);
  std::string la, lb;
  for (int line = 1;; ++line) {
    const bool ga = static_cast<bool>(std::getline(sa, la));
    const bool gb = static_cast<bool>(std::getline(sb, lb));
    if (!ga && !gb) return "no difference";
    if (!ga || !gb || la != lb)
      return "first difference at line " + std::to_string(line) + ":\n  without preload: " + (ga ? la : "<end>") +
             "\n  with preload:    " + (gb ? lb : "<end>");
  }
}

bool have(const std::string& tool) {
  return access(tool.c_str(), X_OK) == 0;
}

// Runs `script` with /bin/sh in a fresh work dir, once without and once with the preload.
void expect_same(const std::string& script, const std::string& must_print,
                 const std::map<std::string, std::string>& files = {}) {
  RunResult runs[2];
  for (int with = 0; with < 2; ++with) {
    TempDir work("rsrwork"), sockets, home("rsrhome");
    for (const auto& [name, text] : files) rt::write_file(work / name, text);
    Spawn s;
    // The marker proves the preload reached the programs the script runs; it is written outside
    // stdout so that both runs print the same, and the script's exit status is kept.
    const std::string mark = sockets / "preloaded.mark";
    s.argv = {"/bin/sh", "-c",
              "( " + script + "\n); rc=$?; if grep -q librsrmem /proc/self/maps; then : > '" + mark +
                  "'; fi; exit $rc"};
    s.cwd = work.path();
    s.preload = with == 1;
    s.socket_dir = sockets.path();
    s.env = {{"HOME", home.path()}, {"LC_ALL", "C"}, {"TZ", "UTC"}, {"GIT_CONFIG_NOSYSTEM", "1"},
             {"PYTHONHASHSEED", "0"}, {"PYTHONDONTWRITEBYTECODE", "1"}};
    runs[with] = rt::run(s, kTimeoutMs);
    ASSERT_TRUE(runs[with].started);
    EXPECT_EQ(access(mark.c_str(), F_OK) == 0, with == 1) << "the preload was " << (with ? "not " : "")
                                                          << "applied to the script's commands";
    ASSERT_FALSE(runs[with].timed_out) << (with ? "with" : "without") << " the preload:\n" << runs[with].describe();
  }
  const RunResult& base = runs[0];
  const RunResult& pre = runs[1];
  ASSERT_EQ(rt::describe_status(base.status), "exit 0") << "fails even without the preload:\n" << base.describe();
  ASSERT_NE(base.out.find(must_print), std::string::npos) << base.describe();
  EXPECT_EQ(rt::describe_status(pre.status), rt::describe_status(base.status)) << pre.describe();
  EXPECT_TRUE(pre.out == base.out) << "stdout differs; " << first_difference(base.out, pre.out);
  EXPECT_TRUE(pre.err == base.err) << "stderr differs; " << first_difference(base.err, pre.err);
}

TEST(RealPrograms, Python) {
  if (!have("/usr/bin/python3")) GTEST_SKIP() << "no /usr/bin/python3";
  const char* py = R"PY(
import json, collections, re
d = {i: str(i) * 3 for i in range(200000)}
l = sorted(d.values(), key=lambda s: (len(s), s))
c = collections.Counter(s[0] for s in l)
print(len(l), sum(len(x) for x in l), sorted(c.items())[:3])
doc = json.dumps({str(k): [v, v[::-1]] for k, v in list(d.items())[:20000]})
print(len(doc), len(json.loads(doc)))
words = re.findall(r"[a-z]+", "the quick brown fox jumps over the lazy dog " * 5000)
print(collections.Counter(words).most_common(3))
class Node:
    __slots__ = ("v", "next")
    def __init__(self, v, nxt): self.v, self.next = v, nxt
head = None
for i in range(300000): head = Node(i, head)
n = 0
while head: n += head.v; head = head.next
print("linked", n)
)PY";
  expect_same("/usr/bin/python3 prog.py", "linked", {{"prog.py", py}});
}

TEST(RealPrograms, Git) {
  if (!have("/usr/bin/git")) GTEST_SKIP() << "no git";
  const std::string script = R"SH(
set -e
export GIT_AUTHOR_NAME=Tester GIT_AUTHOR_EMAIL=t@example.invalid GIT_COMMITTER_NAME=Tester
export GIT_COMMITTER_EMAIL=t@example.invalid GIT_AUTHOR_DATE='2024-01-01T00:00:00Z' GIT_COMMITTER_DATE='2024-01-01T00:00:00Z'
git init -q -b main repo
cd repo
i=0
while [ $i -lt 50 ]; do echo "line $i" >> file.txt; i=$((i+1)); done
git add file.txt
git commit -q -m "first commit"
sed -i 's/line 1$/line one/' file.txt
echo extra > other.txt
git add -A
git commit -q -m "second commit"
git log --oneline
git cat-file -p HEAD
git cat-file -p HEAD^{tree}
git diff --stat HEAD~1 HEAD
git gc -q
git fsck --no-progress 2>&1
git rev-list --count HEAD
)SH";
  expect_same(script, "second commit");
}

TEST(RealPrograms, GccCompilesAndRuns) {
  if (!have("/usr/bin/gcc")) GTEST_SKIP() << "no gcc";
  const char* src = R"C(
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
struct node { struct node* next; char text[40]; };
int main(void) {
  struct node* head = NULL;
  for (int i = 0; i < 100000; ++i) {
    struct node* n = malloc(sizeof *n);
    snprintf(n->text, sizeof n->text, "node %d", i);
    n->next = head;
    head = n;
  }
  unsigned long sum = 0;
  while (head) { struct node* n = head; sum += strlen(n->text); head = n->next; free(n); }
  printf("sum %lu\n", sum);
  return 0;
}
)C";
  expect_same("gcc -O2 -Wall -o prog prog.c && ./prog", "sum ", {{"prog.c", src}});
}

TEST(RealPrograms, Sqlite) {
  if (!have("/usr/bin/sqlite3")) GTEST_SKIP() << "no sqlite3";
  const char* sql = R"SQL(
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000)
INSERT INTO t SELECT x, x % 97, printf('name-%06d', x) FROM c;
CREATE INDEX t_grp ON t(grp);
SELECT count(*), sum(length(name)) FROM t;
SELECT grp, count(*), min(name), max(name) FROM t GROUP BY grp ORDER BY grp LIMIT 5;
UPDATE t SET name = upper(name) WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
SELECT count(*), sum(id) FROM t;
SELECT group_concat(name, ',') FROM (SELECT name FROM t ORDER BY id DESC LIMIT 5);
PRAGMA integrity_check;
)SQL";
  expect_same("sqlite3 db.sqlite < script.sql && sqlite3 db.sqlite 'SELECT count(*) FROM t'", "ok",
              {{"script.sql", sql}});
}

}  // namespace
