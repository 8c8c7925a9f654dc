"""Shared pieces of the ingress benchmarks (ingress-wrk, ingress-unthrottle,
ingress-cold-start): skiffd with its ingress on free loopback ports, services through
skiffctl, the skiff-testapp payload run natively in a network namespace of our own, wrk and
nginx as peers. Builds on benchlib.py.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

# $SKIFF_TESTAPP_BIN, as for scripts/images/build.sh, else the build tree's.
TESTAPP = os.environ.get("SKIFF_TESTAPP_BIN") or os.path.join(
    B.BUILD, "tests/payloads/testapp/skiff-testapp")
SKIFFD = os.path.join(B.BUILD, "agent/skiffd")
SKIFFCTL = os.path.join(B.BUILD, "agent/skiffctl/skiffctl")


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def need_testapp():
    if not os.access(TESTAPP, os.X_OK):
        sys.exit(f"bench: {TESTAPP} not built (ninja skiff-testapp; SKIFF_BUILD_DIR={B.BUILD}, "
                 "or SKIFF_TESTAPP_BIN)")


def skiff_ingress_missing():
    """Why the skiff legs cannot run with this build (None if they can): skiffd must know
    --ingress-listen and skiffctl must have `service`."""
    for path in (SKIFFD, SKIFFCTL):
        if not os.access(path, os.X_OK):
            return f"{path} is not built"
    helpfull = subprocess.run([SKIFFD, "--helpfull"], capture_output=True, text=True)
    if "ingress_listen" not in helpfull.stdout + helpfull.stderr:
        return "this skiffd has no --ingress-listen flag"
    usage = subprocess.run([SKIFFCTL, "--help"], capture_output=True, text=True)
    if not re.search(r"^\s+service\b", usage.stdout, re.M):
        return "this skiffctl has no `service` command"
    return None


class IngressSkiffd(B.Skiffd):
    """benchlib's throw-away skiffd, plus its ingress and admin server on free loopback
    ports (`ingress` and `admin` are "127.0.0.1:PORT")."""

    def __init__(self, registry, ip_pool, extra_flags=()):
        self.root = tempfile.mkdtemp(prefix="skiff-bench-")
        self.socket = os.path.join(self.root, "skiffd.sock")
        self.image_root = os.path.join(self.root, "images")
        self.cgroup_parent = f"skiff-bench-{os.getpid()}"
        self.ingress = f"127.0.0.1:{free_port()}"
        self.admin = f"127.0.0.1:{free_port()}"
        self.logf = open(os.path.join(self.root, "skiffd.log"), "w")
        self.proc = None
        try:
            self.proc = subprocess.Popen(
                [SKIFFD, f"--socket={self.socket}",
                 f"--state-dir={os.path.join(self.root, 'state')}",
                 f"--image-root={self.image_root}", f"--ip-pool={ip_pool}",
                 f"--cgroup-parent={self.cgroup_parent}",
                 f"--shim={os.path.join(B.BUILD, 'shim/skiff-shim')}",
                 f"--insecure-registry={registry.address}", "--log-level=warn",
                 f"--ingress-listen={self.ingress}", f"--admin-listen={self.admin}",
                 "--node-domain=skiff.local", *extra_flags],
                stdout=self.logf, stderr=self.logf)
            deadline = time.time() + 20
            while time.time() < deadline:
                if self.ctl("node", check=False).returncode == 0:
                    break
                if self.proc.poll() is not None:
                    raise RuntimeError("skiffd exited")
                time.sleep(0.05)
            else:
                raise RuntimeError("skiffd did not answer within 20 s")
            host, port = self.ingress.split(":")
            B.wait_port(host, int(port), timeout=10)
        except BaseException as e:
            self.logf.flush()
            with open(self.logf.name) as f:
                tail = f.read()[-2000:]
            if self.proc and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.logf.close()
            shutil.rmtree(self.root, ignore_errors=True)
            sys.exit(f"bench: skiffd with ingress did not start ({e}); its log:\n{tail}")

    def put_service(self, name, image, *options):
        self.ctl("service", "put", name, image, *options)

    def delete_service(self, name):
        self.ctl("service", "rm", name, check=False)

    def ready_instances(self, service):
        out = self.ctl_json("ps", "-l", f"skiff.service={service}")
        return [i for i in out.get("instances", []) if i.get("state") == "READY"]

    def wait_ready(self, service, count=1, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            ready = self.ready_instances(service)
            if len(ready) >= count:
                return ready
            time.sleep(0.05)
        sys.exit(f"bench: service {service}: {count} READY instance(s) not there in {timeout}s")

    def wait_none(self, service, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = self.ctl_json("ps", "-l", f"skiff.service={service}")
            if not [i for i in out.get("instances", []) if i.get("state") != "EXITED"]:
                return
            time.sleep(0.05)
        sys.exit(f"bench: service {service}: instances still running after {timeout}s")

    def close(self):
        try:
            for svc in self.ctl_json("service", "ls").get("services", []):
                self.delete_service(svc["name"])
        except (SystemExit, json.JSONDecodeError):
            pass
        super().close()


class NetnsApp:
    """skiff-testapp run natively in a network namespace of ours, reached over a veth pair
    with a /30 out of 10.251.0.0/16: the stand-in for an instance (same network path shape:
    host → veth → netns), without a sandbox. `ip` is the app's address."""

    def __init__(self, subnet_index, env=None, cgroup_procs=None):
        base = 4 * subnet_index  # 10.251.<base/256>.<base%256>/30
        self.host_ip = f"10.251.{base // 256}.{base % 256 + 1}"
        self.ip = f"10.251.{base // 256}.{base % 256 + 2}"
        self.port = 8080
        self.netns = f"skiff-bench-e{subnet_index}-{os.getpid()}"
        self.veth = f"skbe{subnet_index}x{os.getpid() % 10000}"
        self.proc = None
        try:
            B.run(["ip", "netns", "add", self.netns])
            B.run(["ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0",
                   "netns", self.netns])
            B.run(["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.veth])
            B.run(["ip", "link", "set", self.veth, "up"])
            for c in (["ip", "addr", "add", f"{self.ip}/30", "dev", "eth0"],
                      ["ip", "link", "set", "eth0", "up"], ["ip", "link", "set", "lo", "up"]):
                B.run(["ip", "netns", "exec", self.netns] + c)
            full_env = {"PATH": "/bin:/usr/bin", "PORT": str(self.port)}
            full_env.update(env or {})
            self.log = tempfile.NamedTemporaryFile(prefix="skiff-bench-testapp-", mode="w+")
            # `ip netns exec` execs the app in place (same pid). cgroup_procs: a cgroup v1
            # cgroup.procs to move it into (all its threads move with it) — from here, since
            # `ip netns exec` mounts a /sys of the netns without the cgroup hierarchies.
            self.proc = subprocess.Popen(["ip", "netns", "exec", self.netns, TESTAPP],
                                         env=full_env, stdout=self.log, stderr=self.log,
                                         start_new_session=True)
            if cgroup_procs:
                with open(cgroup_procs, "w") as f:
                    f.write(str(self.proc.pid))
            B.wait_port(self.ip, self.port, timeout=10)
        except BaseException:
            self.close()
            raise

    def url(self, path="/"):
        return f"http://{self.ip}:{self.port}{path}"

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def parse_wrk(out):
    """wrk --latency output → {rps, p50_ms, p99_ms, errors, non2xx}."""
    res = {"rps": float("nan"), "p50_ms": float("nan"), "p90_ms": float("nan"),
           "p99_ms": float("nan"), "errors": 0, "non2xx": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    for pct, key in (("50", "p50_ms"), ("90", "p90_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m:
            res[key] = float(m.group(1)) * _UNIT[m.group(2)]
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["errors"] = sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    return res


def wrk(url, connections, seconds, host=None, threads=2):
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if host:
        cmd += ["-H", f"Host: {host}"]
    out = B.run(cmd + [url]).stdout
    res = parse_wrk(out)
    res["raw"] = out
    return res


class Nginx:
    """Debian's nginx as a reverse proxy to `upstream` ("ip:port") with a keep-alive
    upstream block, 2 workers, on a free loopback port, from a temp prefix. It sets the same
    X-Forwarded-For/-Proto/-Host headers skiff's ingress sets, so both do the same work."""

    def __init__(self, upstream):
        if not shutil.which("nginx") and not os.path.exists("/usr/sbin/nginx"):
            sys.exit("bench: nginx not found (apt-get install nginx-light)")
        self.dir = tempfile.mkdtemp(prefix="skiff-bench-nginx-")
        self.port = free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""
worker_processes 2;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {self.dir}/body;
  proxy_temp_path {self.dir}/proxy;
  fastcgi_temp_path {self.dir}/fastcgi;
  uwsgi_temp_path {self.dir}/uwsgi;
  scgi_temp_path {self.dir}/scgi;
  upstream app {{
    server {upstream};
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{self.port} reuseport;
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
    }}
  }}
}}
""")
        self.logf = open(os.path.join(self.dir, "stderr.log"), "w")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-p", self.dir, "-c", conf], stdout=self.logf,
                                     stderr=self.logf, start_new_session=True)
        try:
            B.wait_port("127.0.0.1", self.port, timeout=10)
        except TimeoutError:
            self.close()
            raise

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: workers finish and exit
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.logf.close()
        shutil.rmtree(self.dir, ignore_errors=True)
