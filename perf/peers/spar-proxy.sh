#!/usr/bin/env bash
# Runs spar-proxy as an `--extra` proxy of ../shared/bench/peers.sh, with the
# same lean config the harness gives Envoy (router only, no request-id
# generation, one worker). Environment from the harness: LISTEN, LISTEN_TLS,
# BACKEND_HOST, BACKEND_PORT, CERT, KEY, WORKDIR. The plaintext listener is
# AUTO (HTTP/1.1, and HTTP/2 by prior knowledge: the h2 workload); the TLS one
# offers h2 and http/1.1 by ALPN. Extra arguments go to spar-proxy (e.g. --io epoll).
#
#   ../shared/bench/peers.sh --workloads h1,lat,conn \
#     --extra spar "$PWD/perf/peers/spar-proxy.sh"
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${SPAR_PROXY_BIN:-$HERE/../../target/release/spar-proxy}
ADMIN=$((LISTEN + 9))
CONFIG=$WORKDIR/spar-bootstrap.yaml
cat > "$CONFIG" <<YAML
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: $ADMIN } }
static_resources:
  listeners:
  - name: h1
    address: { socket_address: { address: 127.0.0.1, port_value: $LISTEN } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          codec_type: AUTO
          generate_request_id: false
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: backend }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  - name: tls
    address: { socket_address: { address: 127.0.0.1, port_value: ${LISTEN_TLS:-0} } }
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            alpn_protocols: [h2, http/1.1]
            tls_certificates:
            - certificate_chain: { filename: $CERT }
              private_key: { filename: $KEY }
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_tls
          codec_type: AUTO
          generate_request_id: false
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: backend }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 5s
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: { socket_address: { address: $BACKEND_HOST, port_value: $BACKEND_PORT } }
YAML
exec "$BIN" -c "$CONFIG" --concurrency 1 -l warn "$@"
