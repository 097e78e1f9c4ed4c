#!/usr/bin/env python3
"""Proxy CPU per request with a large route table against a one-route table,
and the cost of the balancing policies.

Each scenario runs spar-proxy (one worker, CPU 1) in front of spar-bench's
echo upstreams, with spar-bench load (CPU 0) sending keep-alive GETs for a
fixed time. Prints proxy CPU-us per request and requests/s, medians of REPS
runs, interleaving scenarios so drift hits them alike. Loopback only; stops
by itself.

Scenarios:
  routes-1       one virtual host, one prefix route
  routes-1000    one virtual host, 1,000 routes; the request matches the last
                 one, after 999 prefix+header matchers that fail (worst case)
  vhosts-1000    1,000 virtual hosts of 10 routes; exact domain, last route
  lb-rr / lb-lr / lb-ring / lb-maglev / lb-random
                 one route to a 3-endpoint cluster with that policy (ring and
                 maglev hash on a header the client sends, so they pick one
                 endpoint; the others spread over three)
  weighted       one route, weighted clusters 90/10

    cargo build --release -p spar-proxy -p spar-bench
    python3 perf/routes/route_scale.py [--seconds 5] [--reps 3] [--only routes-1,routes-1000]
"""
import argparse, json, os, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROXY = os.path.join(ROOT, "target", "release", "spar-proxy")
BENCH = os.path.join(ROOT, "target", "release", "spar-bench")

HEAD = """admin:
  address: { socket_address: { address: 127.0.0.1, port_value: {admin} } }
static_resources:
  listeners:
  - name: http
    address: { socket_address: { address: 127.0.0.1, port_value: {port} } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
          route_config:
            virtual_hosts:
"""


def cluster(name, addrs, policy="ROUND_ROBIN"):
    eps = "".join(
        f"        - endpoint: {{ address: {{ socket_address: {{ address: {ip}, port_value: {p} }} }} }}\n"
        for ip, p in addrs
    )
    return f"""  - name: {name}
    type: STATIC
    lb_policy: {policy}
    connect_timeout: 1s
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
{eps}"""


def vhost(name, domains, routes):
    return (
        f"            - name: {name}\n"
        f"              domains: [{', '.join(json.dumps(d) for d in domains)}]\n"
        f"              routes:\n" + "".join(routes)
    )


def route(prefix, action, header=None):
    m = f"{{ prefix: {json.dumps(prefix)}"
    if header:
        m += f", headers: [{{ name: {header[0]}, string_match: {{ exact: {header[1]} }} }}]"
    m += " }"
    return f"              - match: {m}\n                route: {action}\n"


def config(scenario, port):
    """Bootstrap text with {admin}/{port} left to fill, and the request path.

    Every endpoint is the same echo process, reached at 127.0.0.1, .2 and .3: the
    endpoints are distinct to the proxy (own pools, own balancing), while the backend's
    work per request stays the same, so the figures show the proxy's cost alone."""
    one = "{ cluster: echo }"
    ep = [(f"127.0.0.{i}", port) for i in (1, 2, 3)]
    clusters = [cluster("echo", ep[:1])]
    path = "/bench"
    if scenario == "routes-1":
        vhs = [vhost("all", ["*"], [route("/", one)])]
    elif scenario == "routes-1000":
        rs = [route(f"/svc-{i}/", one, ("x-tenant", f"t{i}")) for i in range(999)]
        rs.append(route("/", one))
        vhs = [vhost("all", ["*"], rs)]
    elif scenario == "vhosts-1000":
        vhs = [
            vhost(f"vh{i}", [f"svc-{i}.example.com"], [route(f"/r{j}/", one) for j in range(9)] + [route("/", one)])
            for i in range(1000)
        ]
        path = "/bench"
    elif scenario.startswith("lb-"):
        policy = {
            "lb-rr": "ROUND_ROBIN",
            "lb-lr": "LEAST_REQUEST",
            "lb-random": "RANDOM",
            "lb-ring": "RING_HASH",
            "lb-maglev": "MAGLEV",
        }[scenario]
        clusters = [cluster("echo", ep, policy)]
        action = one
        if policy in ("RING_HASH", "MAGLEV"):
            action = "{ cluster: echo, hash_policy: [{ header: { header_name: x-user } }] }"
        vhs = [vhost("all", ["*"], [route("/", action)])]
    elif scenario == "weighted":
        clusters = [cluster("echo", ep[:1]), cluster("canary", ep[1:2])]
        action = "{ weighted_clusters: { clusters: [{ name: echo, weight: 90 }, { name: canary, weight: 10 }] } }"
        vhs = [vhost("all", ["*"], [route("/", action)])]
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    text = HEAD + "".join(vhs) + "  clusters:\n" + "".join(clusters)
    return text, path


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


def wait_port(port):
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def run(scenario, seconds, echo_port):
    text, path = config(scenario, echo_port)
    port, admin = free_port(), free_port()
    cfg = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    cfg.write(text.replace("{admin}", str(admin)).replace("{port}", str(port)))
    cfg.close()
    proxy = subprocess.Popen(
        ["taskset", "-c", "1", PROXY, "-c", cfg.name, "--concurrency", "1", "-l", "warn"]
    )
    try:
        wait_port(port)
        host = "svc-999.example.com" if scenario == "vhosts-1000" else "bench"
        args = [
            BENCH, "load", f"http://127.0.0.1:{port}{path}", "-c", "16", "-d", f"{seconds}s",
            "--warmup", "1s", "--pin", "0", "--json", "-q", "-H", f"host: {host}",
            "-H", "x-user: u42",
        ]
        load = subprocess.Popen(args, stdout=subprocess.PIPE)
        time.sleep(1.0)  # spar-bench's warm-up
        before = cpu_ticks(proxy.pid)
        out, _ = load.communicate(timeout=seconds + 30)
        after = cpu_ticks(proxy.pid)
        r = json.loads(out)
        ok = r["ok"]
        if ok <= 0 or r["errors_total"] > 0:
            raise SystemExit(f"{scenario}: failed requests: {r['errors']}")
        cpu_us = (after - before) * 1e6 / os.sysconf("SC_CLK_TCK")
        return cpu_us / ok, r["throughput_rps"]
    finally:
        proxy.terminate()
        proxy.wait()
        os.unlink(cfg.name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="routes-1,routes-1000,vhosts-1000,weighted,lb-rr,lb-lr,lb-random,lb-ring,lb-maglev")
    a = ap.parse_args()
    scenarios = a.only.split(",")
    echo_port = free_port()
    echoes = [
        subprocess.Popen(["taskset", "-c", "0", BENCH, "echo", "--listen", f"0.0.0.0:{echo_port}"])
    ]
    try:
        wait_port(echo_port)
        res = {s: [] for s in scenarios}
        for _ in range(a.reps):
            for s in scenarios:
                res[s].append(run(s, a.seconds, echo_port))
        print("| scenario | proxy CPU-us/req | req/s | vs routes-1 (throughput) |")
        print("|---|---|---|---|")
        base = statistics.median(r[1] for r in res[scenarios[0]])
        for s, rs in res.items():
            cpu = statistics.median(r[0] for r in rs)
            rps = statistics.median(r[1] for r in rs)
            print(f"| {s} | {cpu:.2f} | {rps:,.0f} | {rps / base:.2f}x |")
    finally:
        for e in echoes:
            e.terminate()
            e.wait()


if __name__ == "__main__":
    sys.exit(main())
