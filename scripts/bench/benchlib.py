"""Shared pieces of skiff's benchmark programs: a local registry with the example
images, a throw-away skiffd, skiffctl calls, statistics and the table/JSON report.

Every benchmark measures skiff and its peer side by side in one run on this machine;
figures are medians (these machines are noisy), ratios are what to compare.
"""

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SKIFF_BUILD_DIR", os.path.join(ROOT, "build"))


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    """Runs a command, failing loudly with its output."""
    kw.setdefault("check", True)
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    try:
        return subprocess.run(cmd, **kw)
    except subprocess.CalledProcessError as e:
        sys.exit(f"bench: {' '.join(cmd)} failed ({e.returncode}):\n{e.stdout}\n{e.stderr}")


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summarize(xs):
    return {
        "n": len(xs),
        "p50": percentile(xs, 50),
        "p90": percentile(xs, 90),
        "p99": percentile(xs, 99),
        "min": min(xs) if xs else float("nan"),
        "mean": statistics.fmean(xs) if xs else float("nan"),
    }


def print_table(title, columns, rows, json_obj, json_path=None):
    """Prints a fixed-width table, then the JSON (also written to json_path); no JSON when
    json_obj is None (a second table whose figures are in the first one's JSON)."""
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(str(c).ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)))
    if json_obj is None:
        return
    text = json.dumps(json_obj, indent=2, sort_keys=True)
    print("\nJSON:")
    print(text)
    if json_path:
        with open(json_path, "w") as f:
            f.write(text + "\n")


class Registry:
    """scripts/registry.sh with the example images pushed."""

    def __init__(self, images, skip_big=True):
        self.dir = tempfile.mkdtemp(prefix="skiff-bench-registry-")
        os.rmdir(self.dir)  # registry.sh creates it
        out = run([os.path.join(ROOT, "scripts/registry.sh"), "start", "--dir", self.dir])
        self.address = out.stdout.strip().splitlines()[-1]
        args = [os.path.join(ROOT, "scripts/images/build.sh"), "--registry", self.address]
        if skip_big:
            args.append("--skip-big")
        for name in images:
            run(args + ["--only", name], capture_output=False, stdout=sys.stderr)

    def image(self, name):
        return f"{self.address}/skiff/{name}:latest"

    def close(self):
        run([os.path.join(ROOT, "scripts/registry.sh"), "stop", "--dir", self.dir], check=False)


class Skiffd:
    """A throw-away skiffd with its own socket, state dir and image root. No ingress and no
    admin endpoint (their default ports would clash with a demo or another bench; the
    instance benchmarks measure the instance path); scripts/bench/ingresslib.py starts one
    with both on free ports."""

    def __init__(self, registry, ip_pool="10.91.0.0/24", image_root=None):
        self.root = tempfile.mkdtemp(prefix="skiff-bench-")
        self.socket = os.path.join(self.root, "skiffd.sock")
        self.image_root = image_root or os.path.join(self.root, "images")
        self.cgroup_parent = f"skiff-bench-{os.getpid()}"
        self.logf = open(os.path.join(self.root, "skiffd.log"), "w")
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, "agent/skiffd"),
             f"--socket={self.socket}",
             f"--state-dir={os.path.join(self.root, 'state')}",
             f"--image-root={self.image_root}",
             f"--ip-pool={ip_pool}",
             f"--cgroup-parent={self.cgroup_parent}",
             f"--shim={os.path.join(BUILD, 'shim/skiff-shim')}",
             f"--insecure-registry={registry.address}",
             "--ingress-listen=", "--admin-listen=",
             "--log-level=warn"],
            stdout=self.logf, stderr=self.logf)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.ctl("node", check=False).returncode == 0:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        sys.exit(f"bench: skiffd did not start; see {self.logf.name}")

    def ctl(self, *args, check=True):
        return run([os.path.join(BUILD, "agent/skiffctl/skiffctl"), f"--socket={self.socket}", *args],
                   check=check)

    def ctl_json(self, *args):
        return json.loads(self.ctl("--json", *args).stdout)

    def close(self):
        try:
            for inst in self.ctl_json("ps").get("instances", []):
                self.ctl("rm", "-f", inst["id"], check=False)
        except SystemExit:
            pass
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.logf.close()
        for ctrl in ("cpu", "cpuacct", "memory", "pids", "freezer"):
            d = f"/sys/fs/cgroup/{ctrl}/{self.cgroup_parent}"
            if os.path.isdir(d):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
        shutil.rmtree(self.root, ignore_errors=True)


def cpu_seconds(pid):
    """CPU time (user + system, every thread) of process `pid` and of its child processes
    still running (nginx's workers under its master), in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            pids += [int(c) for c in f.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def wait_port(ip, port, timeout=30.0, interval=0.0005):
    """Polls a TCP connect until it succeeds; returns the time it succeeded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(0.2)
        try:
            s.connect((ip, port))
            return time.monotonic()
        except OSError:
            time.sleep(interval)
        finally:
            s.close()
    raise TimeoutError(f"{ip}:{port} did not answer within {timeout}s")


def require_root():
    if os.geteuid() != 0:
        sys.exit("bench: needs root (namespaces, cgroups)")
