#!/usr/bin/env python3
"""End to end: every dashboard and alert expression returns data from a real Prometheus.

Starts, on free loopback ports and in a temporary directory:
  - the workload (tests/grafana/workload.cc) under LD_PRELOAD=librsrmem.so, as service
    rsrmem-e2e, and `rsrmemctl serve` exporting it;
  - a second run of the workload as the batch job rsrmem-e2e-batch, pushed once with
    `rsrmemctl push` to a Pushgateway;
  - Prometheus (scrape and rule evaluation every second) scraping both with honor_labels and
    loading grafana/alerts.yml.
Once Prometheus holds enough samples, every expression `check.py --list-expressions` prints (the
dashboards' $job set to the served service, so the pushed job cannot stand in for it) is queried at
the current time: its data_expr must return at least one series with a number (not only NaN), and
the whole expression must be accepted. Then every rule must be healthy, the leak alert
(the workload records a leak indicator every two seconds) must be firing and the target alerts
must not be.

  e2e.py --rsrmemctl PATH --preload PATH --workload PATH [--root DIR] [--keep]

Exit status: 0 all good, 1 with a report of what returned nothing, 77 (skipped) when Prometheus,
the Pushgateway or the exporter commands are not available.
"""
import argparse
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SERVICE = "rsrmem-e2e"
BATCH = "rsrmem-e2e-batch"
# Grafana's variables in the queries: enough data for every window after the warm-up below.
RATE_INTERVAL = "15s"
INTERVAL = "5s"
RANGE = "1m"
WARMUP_SAMPLES = 25  # scrapes of the service before querying (one a second)
DEADLINE_S = 200


def log(msg):
    print(msg, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode("utf-8", "replace")


def wait_until(what, predicate, timeout, interval=0.25):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            result = predicate()
            if result:
                return result
        except (OSError, urllib.error.URLError, ValueError) as e:
            last = e
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}" + (f" (last error: {last})" if last else ""))


class Processes:
    """Every process the test starts, each in a process group of its own."""

    def __init__(self, logdir):
        self.logdir = logdir
        self.procs = []

    def start(self, name, cmd, env=None):
        out = open(os.path.join(self.logdir, f"{name}.log"), "wb")
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=env, start_new_session=True)
        out.close()
        self.procs.append((name, p))
        return p

    def stop(self, p, grace=5.0):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(p.pid, signal.SIGKILL)  # whatever the group still holds
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass

    def stop_all(self):
        for _, p in reversed(self.procs):
            self.stop(p)

    def log_tail(self, name, lines=15):
        path = os.path.join(self.logdir, f"{name}.log")
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def report_logs(self):
        for name, p in self.procs:
            log(f"--- {name} (pid {p.pid}, exit {p.poll()}) ---\n{self.log_tail(name)}")


class Prometheus:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def api(self, path, **params):
        url = f"{self.base}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            _, body = http_get(url, timeout=10)
        except urllib.error.HTTPError as e:
            body = e.read().decode("utf-8", "replace")
        reply = json.loads(body)
        if reply.get("status") != "success":
            raise ValueError(f"{path} {params}: {reply.get('errorType')}: {reply.get('error')}")
        return reply["data"]

    def query(self, expr):
        return self.api("query", query=expr, time=f"{time.time():.3f}")


def values_of(data):
    """The sample values of an instant query's result."""
    if data["resultType"] in ("scalar", "string"):
        return [data["result"][1]]
    return [r["value"][1] for r in data["result"]]


def has_number(values):
    for v in values:
        try:
            if not math.isnan(float(v)):
                return True
        except ValueError:
            pass
    return False


def exporter_ready(rsrmemctl):
    """The exporter commands rsrmemctl lacks (an unknown command word shows the main help)."""
    missing = []
    for cmd, option in (("serve", "--listen"), ("push", "--gateway")):
        r = subprocess.run([rsrmemctl, cmd, "--help"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0 or option not in r.stdout:
            missing.append(cmd)
    return missing


def start_workload(procs, args, name, service, sockets):
    env = dict(os.environ)
    env.update({
        "LD_PRELOAD": args.preload,
        "RSR_SOCKET_DIR": sockets,
        "RSR_SERVICE_NAME": service,
        "RSR_PROMETHEUS_METRICS_ENABLED": "true",
        "RSR_MEMORY_METRICS_UPDATE_INTERVAL": "1",
        "RSR_CACHE_METRICS_ENABLED": "true",
        "RSR_CACHE_METRICS_UPDATE_FREQUENCY": "1",
        "RSR_LEAK_DETECTION_ENABLED": "true",
        "RSR_LEAK_CHECK_INTERVAL": "2",
        "RSR_SAMPLE_INTERVAL_BYTES": "65536",
    })
    p = procs.start(name, [args.workload, "--requests-per-second", "2000", "--seconds", "0"], env)

    def socket_up():
        if p.poll() is not None:
            raise RuntimeError(f"{name} exited with {p.returncode}:\n{procs.log_tail(name)}")
        return os.path.exists(os.path.join(sockets, f"{p.pid}.sock"))
    wait_until(f"{name}'s control socket", socket_up, 15)
    return p


def ctl_env(sockets):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env["RSR_SOCKET_DIR"] = sockets
    return env


def start_serve(procs, args, pid, port, sockets):
    """`rsrmemctl serve` for one process; the target option before or after the command word."""
    listen = f"127.0.0.1:{port}"
    forms = [
        [args.rsrmemctl, "serve", "--listen", listen, "--pid", str(pid)],
        [args.rsrmemctl, "--pid", str(pid), "serve", "--listen", listen],
    ]
    errors = []
    for n, cmd in enumerate(forms):
        name = f"serve{n}"
        p = procs.start(name, cmd, ctl_env(sockets))

        def metrics_up():
            if p.poll() is not None:
                raise RuntimeError(f"exited with {p.returncode}")
            _, body = http_get(f"http://{listen}/metrics")
            return "rsr_memory_usage_bytes" in body
        try:
            wait_until(f"{' '.join(cmd)} to export rsr_memory_usage_bytes", metrics_up, 20)
            log(f"exporter: {' '.join(cmd)}")
            return p
        except RuntimeError as e:  # exited: try the other way of giving the target
            errors.append(f"{' '.join(cmd)}: {e}\n{procs.log_tail(name)}")
            procs.stop(p)
        except TimeoutError as e:
            errors.append(f"{e}\n{procs.log_tail(name)}")
            break
    raise RuntimeError("rsrmemctl serve did not export metrics:\n" + "\n".join(errors))


def push(args, pid, gateway, sockets):
    url = f"http://127.0.0.1:{gateway}"
    forms = [
        [args.rsrmemctl, "push", "--gateway", url, "--pid", str(pid)],
        [args.rsrmemctl, "--pid", str(pid), "push", "--gateway", url],
    ]
    errors = []
    for cmd in forms:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=ctl_env(sockets), timeout=30)
        if r.returncode == 0:
            log(f"pushed: {' '.join(cmd)}")
            return
        errors.append(f"{' '.join(cmd)}: exit {r.returncode}: {r.stdout.strip()}")
    raise RuntimeError("rsrmemctl push failed:\n" + "\n".join(errors))


def write_prometheus_config(path, rules, serve_port, gateway_port):
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - {json.dumps(rules)}
scrape_configs:
  - job_name: rsrmem
    honor_labels: true
    static_configs:
      - targets: ['127.0.0.1:{serve_port}']
  - job_name: rsrmem-pushgateway
    honor_labels: true
    static_configs:
      - targets: ['127.0.0.1:{gateway_port}']
""")


def list_expressions(args):
    out = subprocess.run([sys.executable, args.check, "--root", args.root, "--list-expressions",
                          "--job", SERVICE, "--rate-interval", RATE_INTERVAL, "--interval", INTERVAL, "--range", RANGE],
                         stdout=subprocess.PIPE, check=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def check_expressions(prom, items):
    failures = []
    for it in items:
        label = f"{it['file']} {it['kind']} {it['title']!r} {it['ref']}".rstrip()
        try:
            prom.query(it["expr"])
            data = prom.query(it["data_expr"])
        except ValueError as e:
            failures.append(f"{label}: query failed: {e}")
            log(f"ERROR  {label}: {e}")
            continue
        values = values_of(data)
        if not values:
            state = "EMPTY"
            failures.append(f"{label}: no series for {it['data_expr']}")
        elif not has_number(values):
            state = "NaN"
            failures.append(f"{label}: only NaN for {it['data_expr']}")
        else:
            state = "OK"
        log(f"{state:6} {label}: {len(values)} series  {it['data_expr']}")
    return failures


def check_rules(prom):
    failures = []
    for group in prom.api("rules")["groups"]:
        for rule in group["rules"]:
            if rule.get("health") != "ok":
                failures.append(f"rule {rule['name']}: health {rule.get('health')}: {rule.get('lastError')}")
    alerts = prom.api("alerts")["alerts"]
    firing = {(a["labels"]["alertname"], a["labels"].get("job")) for a in alerts if a["state"] == "firing"}
    log("alerts: " + (", ".join(f"{a['labels']['alertname']} ({a['state']}, job {a['labels'].get('job')})"
                                for a in alerts) or "none"))
    if ("RSR_MemoryLeakDetected", SERVICE) not in firing:
        failures.append(f"RSR_MemoryLeakDetected is not firing for {SERVICE}, which records a leak every 2 s")
    for a in alerts:
        if a["labels"]["alertname"] in ("RSR_TargetDown", "RSR_TargetMissing"):
            failures.append(f"{a['labels']['alertname']} is {a['state']} while the exporter is up")
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(HERE)))
    ap.add_argument("--check", default=os.path.join(HERE, "check.py"))
    ap.add_argument("--rsrmemctl", required=True)
    ap.add_argument("--preload", required=True, help="librsrmem.so")
    ap.add_argument("--workload", required=True)
    ap.add_argument("--prometheus", default="/usr/bin/prometheus")
    ap.add_argument("--pushgateway", default="/usr/bin/prometheus-pushgateway")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    args.rules = os.path.join(args.root, "grafana", "alerts.yml")

    for tool in (args.prometheus, args.pushgateway):
        if not shutil.which(tool):
            log(f"SKIP: {tool} is not installed")
            return 77
    missing = exporter_ready(args.rsrmemctl)
    if missing:
        log(f"SKIP: {args.rsrmemctl} has no {' or '.join(missing)} command")
        return 77

    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="rsrmem-grafana-e2e-")
    procs = Processes(tmp)
    ok = False
    try:
        sockets = os.path.join(tmp, "sockets")
        os.mkdir(sockets, 0o700)
        serve_port, gateway_port, prom_port = free_port(), free_port(), free_port()

        # Debian's Pushgateway persists to /var/lib/prometheus by default: keep it in memory.
        procs.start("pushgateway", [args.pushgateway, f"--web.listen-address=127.0.0.1:{gateway_port}",
                                    "--persistence.file="])
        wait_until("the Pushgateway", lambda: http_get(f"http://127.0.0.1:{gateway_port}/-/ready")[0] == 200, 20)

        service = start_workload(procs, args, "workload", SERVICE, sockets)
        exporter = start_serve(procs, args, service.pid, serve_port, sockets)

        config = os.path.join(tmp, "prometheus.yml")
        write_prometheus_config(config, args.rules, serve_port, gateway_port)
        procs.start("prometheus", [
            args.prometheus, f"--config.file={config}", f"--storage.tsdb.path={os.path.join(tmp, 'data')}",
            f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"])
        prom = Prometheus(prom_port)
        wait_until("Prometheus", lambda: http_get(f"{prom.base}/-/ready")[0] == 200, 30)

        # The batch job: runs a few seconds, pushes once, ends.
        batch = start_workload(procs, args, "batch", BATCH, sockets)
        time.sleep(3)
        push(args, batch.pid, gateway_port, sockets)
        procs.stop(batch)

        def enough():
            for name, p in (("rsrmemctl serve", exporter), ("the workload", service)):
                if p.poll() is not None:
                    raise RuntimeError(f"{name} (pid {p.pid}) exited with {p.returncode}")
            data = prom.query(f'count_over_time(rsr_memory_usage_bytes{{job="{SERVICE}"}}[1m])')
            pushed = prom.query(f'rsr_memory_usage_bytes{{job="{BATCH}"}}')
            n = max((float(v) for v in values_of(data)), default=0)
            return n >= WARMUP_SAMPLES and values_of(pushed)
        wait_until(f"{WARMUP_SAMPLES} scrapes of {SERVICE} and the pushed {BATCH}", enough,
                   max(30, DEADLINE_S - 60 - (time.monotonic() - started)), 1)

        items = list_expressions(args)
        log(f"querying {len(items)} expressions")
        failures = check_expressions(prom, items)
        failures += check_rules(prom)
        if failures:
            log(f"\n{len(failures)} problems:")
            for f in failures:
                log(f"FAIL {f}")
            return 1
        ok = True
        log(f"OK: {len(items)} expressions returned data")
        return 0
    except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as e:
        log(f"FAIL {e}")
        return 1
    finally:
        if not ok:
            procs.report_logs()
        procs.stop_all()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
