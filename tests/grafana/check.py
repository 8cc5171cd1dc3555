#!/usr/bin/env python3
"""Checks grafana/: the two dashboards, the alert rules and the example configuration.

  check.py [--root DIR] [--promtool PATH]
      Validates the dashboards' JSON (title, uid, 5 s refresh, 24h/7d/30d ranges, the
      `datasource`, `job` and `instance` variables, every panel on ${datasource} with PromQL
      targets over the exported metric names), runs `promtool check rules` and `promtool test
      rules` on the alert rules and `promtool check config` on prometheus.yml, and parses every
      dashboard expression with promtool. promtool 2.42 cannot parse a bare expression, so each is
      written as a recording rule into a scratch rule file that `promtool check rules` reads.

  check.py --list-expressions [--job RE] [--instance RE] [--rate-interval D] [--interval D]
           [--range D]
      Prints every dashboard and alert expression, one JSON object per line, with the Grafana
      variables replaced by the values given: {"file", "kind", "title", "ref", "raw", "expr",
      "data_expr"}. data_expr is the part of expr that must return series whenever the metrics
      exist: the left side of a top-level comparison, the argument of absent(), and expr without
      an `or vector(...)` fallback.

Exit status: 0 when everything holds, 1 with a list of problems, 77 (skipped) when promtool is
missing and everything else holds.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

DASHBOARDS = {
    "rsr-memory-overview.json": "RSR Memory Monitoring Overview",
    "rsr-memory-details.json": "RSR Memory Performance Details",
}
ALERTS = "alerts.yml"
ALERTS_TEST = "alerts_test.yml"
PROMETHEUS_CONFIG = "prometheus.yml"
PROVISIONING = {
    "provisioning/dashboards/rsrmem.yaml": ["apiVersion: 1", "providers:", "type: file"],
    "provisioning/datasources/prometheus.yaml": ["apiVersion: 1", "datasources:", "type: prometheus"],
}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Grafana 9.0 wrote schema 36, Grafana 10.x writes 38 and 39.
SCHEMA_VERSIONS = range(36, 40)
REQUIRED_RANGES = ("24h", "7d", "30d")

# rsrmemctl's metrics (SPEC section 6 and the exporter's contract); histograms by their series.
GAUGES_AND_COUNTERS = [
    "rsr_memory_usage_bytes", "rsr_memory_peak_usage_bytes", "rsr_scope_retained_bytes_total",
    "rsr_cache_hits_total", "rsr_cache_misses_total", "rsr_memory_leaks_detected_total",
    "rsr_leak_checks_total", "rsr_model_instance_count", "rsr_site_live_bytes",
    "rsr_object_growth_rate", "rsr_deletion_tracker_size", "rsr_heap_live_bytes",
    "rsr_heap_live_blocks", "rsr_heap_peak_live_bytes", "rsr_allocations_total", "rsr_frees_total",
    "rsr_allocated_bytes_total", "rsr_freed_bytes_total", "rsr_tracker_bytes", "rsr_samples_total",
    "rsr_dropped_samples_total", "rsr_unattributed_live_bytes", "rsr_sites", "rsr_profiling_active",
    "rsr_process_start_time_seconds", "rsr_metrics_updated_timestamp_seconds", "rsr_info",
]
HISTOGRAMS = ["rsr_request_memory_usage_mb", "rsr_project_hierarchy_depth"]
EXPORTED = set(GAUGES_AND_COUNTERS) | {h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}
# What the seed's two dashboards show, by the series each reads.
SEED_PANELS = {
    "rsr-memory-overview.json": [
        "rsr_memory_usage_bytes", "rsr_memory_peak_usage_bytes", "rsr_heap_live_bytes",
        "rsr_request_memory_usage_mb_bucket", "rsr_cache_hits_total", "rsr_cache_misses_total",
        "rsr_memory_leaks_detected_total",
    ],
    "rsr-memory-details.json": [
        "rsr_model_instance_count", "rsr_object_growth_rate", "rsr_deletion_tracker_size",
        "rsr_tracker_bytes", "rsr_project_hierarchy_depth_bucket", "rsr_allocations_total",
        "rsr_memory_usage_bytes",
    ],
}
# Series Prometheus and the Pushgateway add.
OTHER_SERIES = {"up", "push_time_seconds"}

KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset",
    "bool", "inf", "nan", "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
    "count_values", "bottomk", "topk", "quantile",
}
COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")


def default_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---------------------------------------------------------------------------------------------
# Reading the files


def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def label_values_selector(query):
    """The series selector of label_values(SELECTOR, label), or None for label_values(label)."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", query, re.S)
    return m.group(1).strip() if m else None


def variable_query(v):
    q = v.get("query")
    if isinstance(q, dict):
        q = q.get("query")
    return q if isinstance(q, str) else ""


def dashboard_expressions(rel, d):
    """(kind, title, ref, raw expression) of a dashboard's panels, annotations and variables."""
    out = []
    for p in all_panels(d.get("panels", [])):
        for t in p.get("targets", []) or []:
            out.append(("panel", p.get("title", ""), t.get("refId", ""), t.get("expr", "")))
    for a in d.get("annotations", {}).get("list", []):
        if a.get("expr"):
            out.append(("annotation", a.get("name", ""), "", a["expr"]))
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            sel = label_values_selector(variable_query(v))
            if sel:
                out.append(("variable", v.get("name", ""), "", sel))
    return [{"file": rel, "kind": k, "title": t, "ref": r, "raw": e} for k, t, r, e in out]


def yaml_scalar(text, lines, i, key_indent, where):
    """The value of `key: text` at lines[i]: a plain, quoted or block scalar (| or >)."""
    text = text.strip()
    if text[:1] in ("|", ">"):
        block = []
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or
                                  len(lines[j]) - len(lines[j].lstrip()) > key_indent):
            block.append(lines[j])
            j += 1
        while block and not block[-1].strip():
            block.pop()
        indent = min(len(b) - len(b.lstrip()) for b in block if b.strip())
        body = [b[indent:] for b in block]
        return ("\n" if text[0] == "|" else " ").join(body).strip()
    if text.startswith('"'):
        end = re.match(r'"(?:[^"\\]|\\.)*"', text)
        if not end:
            raise ValueError(f"{where}: unterminated double-quoted value")
        return json.loads(end.group(0))
    if text.startswith("'"):
        end = re.match(r"'(?:[^']|'')*'", text)
        if not end:
            raise ValueError(f"{where}: unterminated single-quoted value")
        return end.group(0)[1:-1].replace("''", "'")
    nxt = lines[i + 1] if i + 1 < len(lines) else ""
    if nxt.strip() and not nxt.lstrip().startswith("#") and \
            len(nxt) - len(nxt.lstrip()) > key_indent:
        raise ValueError(f"{where}: multi-line plain scalars are not supported; use `expr: |`")
    return re.sub(r"\s+#.*$", "", text).strip()


def rule_expressions(path, rel):
    """(kind, name, expression) of every rule in a Prometheus rule file.

    Reads the subset of YAML rule files are written in (block mappings, `- alert:`/`- record:`
    items, plain, quoted and block scalars); `promtool check rules` judges the file itself, and
    check() compares the number of rules found here with promtool's count."""
    lines = open(path, encoding="utf-8").read().split("\n")
    rules = []
    current = None
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)- (alert|record):\s*(.*)$", line)
        if m:
            current = {"file": rel, "kind": m.group(2), "title": m.group(3).strip().strip("'\""),
                       "ref": "", "raw": None, "indent": len(m.group(1)) + 2}
            rules.append(current)
            continue
        m = re.match(r"^(\s*)expr:(.*)$", line)
        if m and current and len(m.group(1)) == current["indent"]:
            current["raw"] = yaml_scalar(m.group(2), lines, i, current["indent"],
                                         f"{rel}:{i + 1}")
    for r in rules:
        if not r["raw"]:
            raise ValueError(f"{rel}: rule {r['title']} has no expr")
        del r["indent"]
    return rules


# ---------------------------------------------------------------------------------------------
# PromQL text


def substitute(expr, values):
    for name, value in values.items():
        expr = re.sub(r"\$\{" + re.escape(name) + r"\}|\$" + re.escape(name) + r"\b",
                      lambda _m, v=value: v, expr)
    return expr


def strip_strings(expr):
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)


def top_level(expr):
    """Yields (index, char) of the characters of expr outside brackets and strings."""
    depth = 0
    quote = None
    i = 0
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            yield i, c
        i += 1


def unwrap(expr):
    """expr without parentheses around all of it."""
    expr = expr.strip()
    while expr.startswith("(") and expr.endswith(")"):
        depth = 0
        for i, c in enumerate(expr):
            depth += c == "("
            depth -= c == ")"
            if depth == 0 and i < len(expr) - 1:
                return expr
        expr = expr[1:-1].strip()
    return expr


def data_expression(expr):
    expr = unwrap(re.sub(r"#[^\n]*", "", expr))
    m = re.fullmatch(r"absent(_over_time)?\s*\((.*)\)", expr, re.S)
    if m:
        inner = m.group(2).strip()
        if m.group(1):
            inner = re.sub(r"\[[^\]]*\]\s*$", "", inner)
        return data_expression(inner)
    positions = dict(top_level(expr))
    for i in sorted(positions):
        two = expr[i:i + 2]
        if two in COMPARISONS and all(k in positions for k in (i, i + 1)):
            return data_expression(expr[:i])
        if expr[i] in "<>" and two not in COMPARISONS:
            return data_expression(expr[:i])
    for i in sorted(positions):
        if re.match(r"\bor\s+vector\s*\(", expr[i:]) and (i == 0 or not expr[i - 1].isalnum()):
            return data_expression(expr[:i])
    return expr


def metric_names(expr):
    """Series names an expression reads."""
    e = strip_strings(re.sub(r"#[^\n]*", "", expr))
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\boffset\s+\S+", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:]|\s*\()", e):
        if m.group(1).lower() not in KEYWORDS:
            names.add(m.group(1))
    return names


# ---------------------------------------------------------------------------------------------
# Collecting


def collect(root, values):
    """Every expression of grafana/, with variables substituted."""
    gdir = os.path.join(root, "grafana")
    items = []
    for name in DASHBOARDS:
        rel = f"grafana/{name}"
        with open(os.path.join(gdir, name), encoding="utf-8") as f:
            items += dashboard_expressions(rel, json.load(f))
    items += rule_expressions(os.path.join(gdir, ALERTS), f"grafana/{ALERTS}")
    for it in items:
        it["expr"] = substitute(it["raw"], values)
        it["data_expr"] = data_expression(it["expr"])
    return items


def check_dashboard(rel, text, errors):
    def err(msg):
        errors.append(f"{rel}: {msg}")

    if "__inputs" in text or "${DS_" in text:
        err("uses __inputs/${DS_...}; only the `datasource` variable works for import and provisioning")
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        err(f"invalid JSON: {e}")
        return
    name = os.path.basename(rel)
    if d.get("title") != DASHBOARDS[name]:
        err(f"title is {d.get('title')!r}, expected {DASHBOARDS[name]!r}")
    if not isinstance(d.get("uid"), str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", d["uid"]):
        err(f"uid {d.get('uid')!r} is missing or not a Grafana uid")
    if d.get("id") is not None:
        err("has an `id`: an imported dashboard must not carry its database id")
    if d.get("schemaVersion") not in SCHEMA_VERSIONS:
        err(f"schemaVersion {d.get('schemaVersion')!r} is not one of Grafana 9/10's")
    if d.get("refresh") != "5s":
        err(f"refresh is {d.get('refresh')!r}, expected '5s'")
    tp = d.get("timepicker", {})
    if "5s" not in tp.get("refresh_intervals", []):
        err("timepicker.refresh_intervals lacks 5s")
    for r in REQUIRED_RANGES:
        if r not in tp.get("time_options", []):
            err(f"timepicker.time_options lacks {r}")
        if not any(q.get("from") == f"now-{r}" for q in tp.get("quick_ranges", [])):
            err(f"timepicker.quick_ranges lacks now-{r}")
    if not (d.get("time", {}).get("from", "").startswith("now-") and d.get("time", {}).get("to") == "now"):
        err("time range must be relative to now")

    variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        err("needs a `datasource` variable of type datasource with query prometheus")
    for name in ("job", "instance"):
        v = variables.get(name)
        if not v or v.get("type") != "query":
            err(f"needs a `{name}` query variable")
            continue
        if v.get("datasource") != DATASOURCE:
            err(f"variable {name}: datasource must be {DATASOURCE}")
        if label_values_selector(variable_query(v)) is None:
            err(f"variable {name}: query must be label_values(<series>, {name})")
        elif not variable_query(v).rstrip().endswith(f"{name})"):
            err(f"variable {name}: label_values must read the label {name}")
        if v.get("includeAll") and v.get("allValue") != ".+":
            err(f"variable {name}: allValue must be .+ (its values go into =~ matchers)")

    ids = []
    panels = list(all_panels(d.get("panels", [])))
    if not panels:
        err("has no panels")
    for p in panels:
        title = p.get("title") or f"panel {p.get('id')}"
        ids.append(p.get("id"))
        if not isinstance(p.get("gridPos"), dict):
            err(f"{title}: no gridPos")
        if p.get("type") == "row":
            if p.get("targets"):
                err(f"row {title}: a row has no queries")
            continue
        if not p.get("title"):
            err(f"panel {p.get('id')}: no title")
        if p.get("datasource") != DATASOURCE:
            err(f"{title}: datasource is {p.get('datasource')!r}, expected {DATASOURCE}")
        targets = p.get("targets") or []
        if not targets:
            err(f"{title}: no targets")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or not all(refs):
            err(f"{title}: refIds must be present and distinct")
        for t in targets:
            if t.get("datasource", DATASOURCE) != DATASOURCE:
                err(f"{title} {t.get('refId')}: target datasource is not {DATASOURCE}")
            if not isinstance(t.get("expr"), str) or not t["expr"].strip():
                err(f"{title} {t.get('refId')}: no expr")
    if len(set(ids)) != len(ids) or None in ids:
        err("panel ids must be present and unique")
    for a in d.get("annotations", {}).get("list", []):
        if a.get("builtIn"):
            continue
        if a.get("datasource") != DATASOURCE or not a.get("expr"):
            err(f"annotation {a.get('name')}: needs datasource {DATASOURCE} and an expr")


def check_expressions(items, errors):
    used = set()
    for it in items:
        where = f"{it['file']}: {it['kind']} {it['title']!r} {it['ref']}".rstrip()
        raw = it["raw"]
        for var in re.findall(r"\$\{?(job|instance)\b", strip_strings(raw)):
            errors.append(f"{where}: ${var} outside a label matcher")
        for m in re.finditer(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', raw):
            if re.search(r"\$\{?(job|instance)\b", m.group(3)) and m.group(2) != "=~":
                errors.append(f"{where}: {m.group(0)}: a multi-value variable needs =~")
        if "$" in it["expr"]:
            errors.append(f"{where}: unsubstituted variable left in {it['expr']!r}")
        names = metric_names(it["expr"])
        if not names:
            errors.append(f"{where}: reads no series: {it['expr']!r}")
        for n in sorted(names - EXPORTED - OTHER_SERIES):
            errors.append(f"{where}: {n} is not a series rsrmemctl exports")
        if it["file"].endswith(".json"):
            used |= names
    for name, wanted in SEED_PANELS.items():
        read = set()
        for it in items:
            if it["file"] == f"grafana/{name}" and it["kind"] == "panel":
                read |= metric_names(it["expr"])
        for n in wanted:
            if n not in read:
                errors.append(f"grafana/{name}: no panel reads {n}")
        if name == "rsr-memory-overview.json":
            for q in ("0.5", "0.95", "0.99"):
                pattern = (r"histogram_quantile\(\s*" + re.escape(q) + r"\s*,\s*sum by \(le, scope\) "
                           r"\(rate\(rsr_request_memory_usage_mb_bucket\{")
                if not any(re.search(pattern, it["raw"]) for it in items if it["file"] == f"grafana/{name}"):
                    errors.append(f"grafana/{name}: no P{q[2:].ljust(2, '0')} of "
                                  "rsr_request_memory_usage_mb by scope")
    for n in GAUGES_AND_COUNTERS + HISTOGRAMS:
        if not used & ({n} | {n + s for s in ("_bucket", "_sum", "_count")}):
            errors.append(f"grafana/: no dashboard shows {n}")


def run(cmd, cwd):
    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout


def check_with_promtool(promtool, root, items, errors):
    gdir = os.path.join(root, "grafana")
    rc, out = run([promtool, "check", "rules", ALERTS], gdir)
    if rc != 0:
        errors.append(f"promtool check rules {ALERTS} failed:\n{out}")
    else:
        m = re.search(r"SUCCESS: (\d+) rules found", out)
        found = sum(1 for it in items if it["file"].endswith(ALERTS))
        if not m or int(m.group(1)) != found:
            errors.append(f"{ALERTS}: promtool found {m and m.group(1)} rules, this check read {found}")
    rc, out = run([promtool, "test", "rules", ALERTS_TEST], gdir)
    if rc != 0:
        errors.append(f"promtool test rules {ALERTS_TEST} failed:\n{out}")
    rc, out = run([promtool, "check", "config", PROMETHEUS_CONFIG], gdir)
    if rc != 0:
        errors.append(f"promtool check config {PROMETHEUS_CONFIG} failed:\n{out}")

    # Every expression, and the part the end-to-end test queries, as a recording rule.
    exprs = []
    for it in items:
        exprs.append((it, it["expr"]))
        if it["data_expr"] != it["expr"]:
            exprs.append((it, it["data_expr"]))
    with tempfile.TemporaryDirectory(prefix="rsrmem-grafana-") as tmp:
        path = os.path.join(tmp, "expressions.yml")
        with open(path, "w", encoding="utf-8") as f:
            f.write("groups:\n  - name: grafana-expressions\n    rules:\n")
            for n, (_, e) in enumerate(exprs):
                f.write(f"      - record: grafana_expression_{n}\n        expr: {json.dumps(e)}\n")
        rc, out = run([promtool, "check", "rules", path], tmp)
    if rc != 0:
        bad = {int(n) for n in re.findall(r"grafana_expression_(\d+)", out)}
        for n in sorted(bad):
            it, e = exprs[n]
            errors.append(f"{it['file']}: {it['kind']} {it['title']!r} {it['ref']}: does not parse: {e}")
        if not bad:
            errors.append(f"promtool check rules on the dashboard expressions failed:\n{out}")


def check(root, promtool):
    errors = []
    gdir = os.path.join(root, "grafana")
    for name in DASHBOARDS:
        path = os.path.join(gdir, name)
        if not os.path.exists(path):
            errors.append(f"grafana/{name} is missing")
            continue
        with open(path, encoding="utf-8") as f:
            check_dashboard(f"grafana/{name}", f.read(), errors)
    uids = []
    for name in DASHBOARDS:
        try:
            with open(os.path.join(gdir, name), encoding="utf-8") as f:
                uids.append(json.load(f).get("uid"))
        except (OSError, ValueError):
            pass
    if len(set(uids)) != len(uids):
        errors.append("the dashboards share a uid")
    for rel, needles in PROVISIONING.items():
        path = os.path.join(gdir, rel)
        if not os.path.exists(path):
            errors.append(f"grafana/{rel} is missing")
            continue
        text = open(path, encoding="utf-8").read()
        for n in needles:
            if n not in text:
                errors.append(f"grafana/{rel}: lacks `{n}`")
    try:
        items = collect(root, example_values())
    except (OSError, ValueError) as e:
        errors.append(str(e))
        items = []
    check_expressions(items, errors)

    skipped = False
    tool = shutil.which(promtool)
    if tool:
        check_with_promtool(tool, root, items, errors)
    else:
        print(f"promtool ({promtool}) not found: rules, rule tests and PromQL syntax not checked")
        skipped = True

    for e in errors:
        print(f"FAIL {e}")
    if errors:
        return 1
    print(f"OK: {len(DASHBOARDS)} dashboards, {len(items)} expressions")
    return 77 if skipped else 0


def example_values(job=".+", instance=".+", rate_interval="1m", interval="15s", rng="1h"):
    return {"job": job, "instance": instance, "__rate_interval": rate_interval,
            "__interval": interval, "__range": rng}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=default_root(), help="source tree (holds grafana/)")
    ap.add_argument("--promtool", default="promtool")
    ap.add_argument("--list-expressions", action="store_true",
                    help="print every expression as one JSON object per line")
    ap.add_argument("--job", default=".+", help="value of $job (a regex: matchers use =~)")
    ap.add_argument("--instance", default=".+", help="value of $instance")
    ap.add_argument("--rate-interval", default="1m", help="value of $__rate_interval")
    ap.add_argument("--interval", default="15s", help="value of $__interval")
    ap.add_argument("--range", default="1h", help="value of $__range")
    a = ap.parse_args()
    if a.list_expressions:
        values = example_values(a.job, a.instance, a.rate_interval, a.interval, a.range)
        for it in collect(a.root, values):
            print(json.dumps(it))
        return 0
    return check(a.root, a.promtool)


if __name__ == "__main__":
    sys.exit(main())
