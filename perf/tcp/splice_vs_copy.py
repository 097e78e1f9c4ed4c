#!/usr/bin/env python3
"""Bulk TCP through spar-proxy's tcp_proxy: userspace copy against splice(2).

Sends SIZE bytes over one connection (client and sink on CPU 0, proxy on
CPU 1), interleaving the two modes, and prints proxy CPU-ms per GiB and
throughput, medians of REPS runs. Loopback only; stops by itself.

    cargo build --release -p spar-proxy
    python3 perf/tcp/splice_vs_copy.py [--size-gib 2] [--reps 3]
"""
import argparse, os, socket, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "target", "release", "spar-proxy")

BOOT = """admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
static_resources:
  listeners:
  - name: tcp
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: bulk
          cluster: sink
  clusters:
  - name: sink
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: sink
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {sink} }} }} }}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def run(mode, size):
    os.sched_setaffinity(0, {0})
    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(1)
    got = [0]

    def drain():
        c, _ = sink.accept()
        buf = bytearray(1 << 20)
        while True:
            n = c.recv_into(buf)
            if n == 0:
                break
            got[0] += n
        c.close()

    t = threading.Thread(target=drain)
    t.start()
    port, admin = free_port(), free_port()
    cfg = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    cfg.write(BOOT.format(port=port, admin=admin, sink=sink.getsockname()[1]))
    cfg.close()
    args = ["taskset", "-c", "1", BIN, "-c", cfg.name, "--concurrency", "1", "-l", "warn"]
    if mode == "splice":
        args.append("--tcp-splice")
    proxy = subprocess.Popen(args)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        # The probe above made one connection to the sink: wait for a fresh one.
        t.join(timeout=5)
        t = threading.Thread(target=drain)
        got[0] = 0
        t.start()
        before = cpu_ticks(proxy.pid)
        start = time.time()
        c = socket.create_connection(("127.0.0.1", port))
        block = b"x" * (1 << 20)
        for _ in range(size // len(block)):
            c.sendall(block)
        c.shutdown(socket.SHUT_WR)
        t.join(timeout=120)
        wall = time.time() - start
        cpu_ms = (cpu_ticks(proxy.pid) - before) * 1000 / os.sysconf("SC_CLK_TCK")
        c.close()
        assert got[0] == size, f"{mode}: sink got {got[0]} of {size}"
        return cpu_ms / (size / (1 << 30)), size / wall / (1 << 30)
    finally:
        proxy.terminate()
        proxy.wait()
        os.unlink(cfg.name)
        sink.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-gib", type=float, default=2)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    size = int(a.size_gib * (1 << 30)) // (1 << 20) * (1 << 20)
    res = {"copy": [], "splice": []}
    for _ in range(a.reps):
        for mode in ("copy", "splice"):
            res[mode].append(run(mode, size))
    print("| mode | proxy CPU-ms per GiB | GiB/s |")
    print("|---|---|---|")
    for mode, rs in res.items():
        cpu = statistics.median(r[0] for r in rs)
        gbs = statistics.median(r[1] for r in rs)
        print(f"| {mode} | {cpu:.0f} | {gbs:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
