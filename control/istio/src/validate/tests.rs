//! One case per rule: a document, and the error (field path, text substring) it must give,
//! or `None` when it must be accepted without errors.

use crate::{Level, Options, analyze, load};

/// (case, document, expected error path and text substring).
type Case = (
    &'static str,
    &'static str,
    Option<(&'static str, &'static str)>,
);

const VS: &str =
    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs}\nspec:\n";
const DR: &str =
    "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata: {name: dr}\nspec:\n";
const GW: &str =
    "apiVersion: networking.istio.io/v1alpha3\nkind: Gateway\nmetadata: {name: gw}\nspec:\n";
const SE: &str =
    "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: se}\nspec:\n";
const SC: &str = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: sc}\nspec:\n";
const AP: &str =
    "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ap}\nspec:\n";
const PA: &str = "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata: {name: pa}\nspec:\n";
const RA: &str =
    "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: ra}\nspec:\n";
const TM: &str = "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: t}\nspec:\n";

const ROUTE: &str = "    route: [{destination: {host: a}}]\n";

fn cases() -> Vec<Case> {
    let vs = |body: &str| format!("{VS}  hosts: [a]\n  http:\n  - {body}\n");
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    vec![
        ("vs ok", leak(vs("route: [{destination: {host: a}}]")), None),
        (
            "vs no routes",
            leak(format!("{VS}  hosts: [a]\n")),
            Some(("spec", "http, tcp or tls must be provided")),
        ),
        (
            "vs star host on mesh",
            leak(format!("{VS}  hosts: ['*']\n  http:\n  - {}", &ROUTE[4..])),
            Some(("spec.hosts[0]", "wildcard host *")),
        ),
        (
            "vs bad host",
            leak(format!(
                "{VS}  hosts: ['a.*.com']\n  http:\n  - {}",
                &ROUTE[4..]
            )),
            Some((
                "spec.hosts[0]",
                "wildcard is allowed only as the left-most label",
            )),
        ),
        (
            "vs duplicate hosts",
            leak(format!(
                "{VS}  hosts: ['*.foo.com', a.foo.com]\n  http:\n  - {}",
                &ROUTE[4..]
            )),
            Some(("spec.hosts[1]", "duplicate hosts")),
        ),
        (
            "vs bad gateway",
            leak(format!(
                "{VS}  hosts: [a]\n  gateways: [a/b/c]\n  http:\n  - {}",
                &ROUTE[4..]
            )),
            Some(("spec.gateways[0]", "invalid gateway name")),
        ),
        (
            "negative weight",
            leak(vs(
                "route: [{destination: {host: a}, weight: -1}, {destination: {host: b}, weight: 101}]",
            )),
            Some(("spec.http[0].route[0].weight", "must not be negative")),
        ),
        (
            "zero weights",
            leak(vs(
                "route: [{destination: {host: a}, weight: 0}, {destination: {host: b}, weight: 0}]",
            )),
            Some(("spec.http[0].route", "greater than 0")),
        ),
        (
            "weights not 100 are fine",
            leak(vs(
                "route: [{destination: {host: a}, weight: 1}, {destination: {host: b}, weight: 2}]",
            )),
            None,
        ),
        (
            "missing host",
            leak(vs("route: [{destination: {subset: v1}}]")),
            Some((
                "spec.http[0].route[0].destination.host",
                "destination host is required",
            )),
        ),
        (
            "bad subset",
            leak(vs("route: [{destination: {host: a, subset: V_1}}]")),
            Some(("spec.http[0].route[0].destination.subset", "DNS-1123")),
        ),
        (
            "port 0",
            leak(vs("route: [{destination: {host: a, port: {number: 0}}}]")),
            Some((
                "spec.http[0].route[0].destination.port.number",
                "port must be between 1-65535",
            )),
        ),
        (
            "no action",
            leak(vs("timeout: 1s")),
            Some(("spec.http[0]", "must have one of route")),
        ),
        (
            "route and redirect",
            leak(vs(
                "redirect: {uri: /x}\n    route: [{destination: {host: a}}]",
            )),
            Some(("spec.http[0]", "both route and redirect")),
        ),
        (
            "redirect and rewrite",
            leak(vs("redirect: {uri: /x}\n    rewrite: {uri: /y}")),
            Some(("spec.http[0]", "rewrite and redirect")),
        ),
        (
            "redirect code",
            leak(vs("redirect: {uri: /x, redirectCode: 200}")),
            Some(("spec.http[0].redirect.redirectCode", "3xx")),
        ),
        (
            "direct response status",
            leak(vs("directResponse: {status: 100}")),
            Some(("spec.http[0].directResponse.status", "200-599")),
        ),
        (
            "bad duration",
            leak(vs("timeout: 5\n    route: [{destination: {host: a}}]")),
            Some(("spec.http[0].timeout", "invalid type")),
        ),
        (
            "bad duration text",
            leak(vs("timeout: 5x\n    route: [{destination: {host: a}}]")),
            Some(("spec.http[0].timeout", "not a duration")),
        ),
        (
            "duration under 1ms",
            leak(vs("timeout: 100us\n    route: [{destination: {host: a}}]")),
            Some(("spec.http[0].timeout", "greater than 1ms")),
        ),
        (
            "bad regex",
            leak(vs(
                "match: [{uri: {regex: '('}}]\n    route: [{destination: {host: a}}]",
            )),
            Some(("spec.http[0].match[0].uri.regex", "invalid regex")),
        ),
        (
            "two string matches",
            leak(vs(
                "match: [{uri: {exact: /a, prefix: /b}}]\n    route: [{destination: {host: a}}]",
            )),
            Some((
                "spec.http[0].match[0].uri",
                "only one of exact, prefix or regex",
            )),
        ),
        (
            "empty match",
            leak(vs("match: [{}]\n    route: [{destination: {host: a}}]")),
            Some(("spec.http[0].match[0]", "must not be empty")),
        ),
        (
            "header presence ok",
            leak(vs(
                "match: [{headers: {x-a: {}}}]\n    route: [{destination: {host: a}}]",
            )),
            None,
        ),
        (
            "bad retry policy",
            leak(vs(
                "retries: {attempts: 3, retryOn: '5xx,bogus'}\n    route: [{destination: {host: a}}]",
            )),
            Some(("spec.http[0].retries.retryOn", "\"bogus\"")),
        ),
        (
            "retry status code ok",
            leak(vs(
                "retries: {attempts: 3, retryOn: '5xx,503'}\n    route: [{destination: {host: a}}]",
            )),
            None,
        ),
        (
            "fault percent",
            leak(vs(
                "fault: {abort: {httpStatus: 503, percentage: {value: 101}}}\n    route: [{destination: {host: a}}]",
            )),
            Some(("spec.http[0].fault.abort.percentage.value", "[0, 100]")),
        ),
        (
            "fault empty",
            leak(vs("fault: {}\n    route: [{destination: {host: a}}]")),
            Some(("spec.http[0].fault", "delay or abort")),
        ),
        (
            "abort status",
            leak(vs(
                "fault: {abort: {httpStatus: 700}}\n    route: [{destination: {host: a}}]",
            )),
            Some(("spec.http[0].fault.abort.httpStatus", "200-599")),
        ),
        (
            "mirror and mirrors",
            leak(vs(
                "mirror: {host: b}\n    mirrors: [{destination: {host: c}}]\n    route: [{destination: {host: a}}]",
            )),
            Some(("spec.http[0]", "both mirror and mirrors")),
        ),
        (
            "authority twice",
            leak(vs(
                "rewrite: {authority: x}\n    headers: {request: {set: {host: y}}}\n    route: [{destination: {host: a}}]",
            )),
            Some(("spec.http[0]", "only one place")),
        ),
        (
            "pseudo header",
            leak(vs(
                "headers: {request: {set: {':path': /x}}}\n    route: [{destination: {host: a}}]",
            )),
            Some((
                "spec.http[0].headers.request.set.:path",
                "cannot be modified",
            )),
        ),
        (
            "removed field",
            leak(vs(
                "websocketUpgrade: true\n    route: [{destination: {host: a}}]",
            )),
            Some(("spec.http[0].websocketUpgrade", "unknown field")),
        ),
        (
            "tls route without sni",
            leak(format!(
                "{VS}  hosts: [a]\n  tls:\n  - match: [{{port: 443}}]\n    route: [{{destination: {{host: a}}}}]\n"
            )),
            Some(("spec.tls[0].match[0].sniHosts", "at least one SNI host")),
        ),
        (
            "tcp bad subnet",
            leak(format!(
                "{VS}  hosts: [a]\n  tcp:\n  - match: [{{destinationSubnets: [10.0.0.0/33]}}]\n    route: [{{destination: {{host: a}}}}]\n"
            )),
            Some((
                "spec.tcp[0].match[0].destinationSubnets[0]",
                "prefix length",
            )),
        ),
        (
            "exportTo star with others",
            leak(format!(
                "{VS}  hosts: [a]\n  exportTo: ['*', foo]\n  http:\n  - {}",
                &ROUTE[4..]
            )),
            Some(("spec.exportTo", "cannot be combined")),
        ),
        (
            "exportTo tilde on vs",
            leak(format!(
                "{VS}  hosts: [a]\n  exportTo: ['~']\n  http:\n  - {}",
                &ROUTE[4..]
            )),
            Some(("spec.exportTo[0]", "only allowed on ServiceEntry")),
        ),
        // DestinationRule
        (
            "dr no host",
            leak(format!("{DR}  subsets: [{{name: v1}}]\n")),
            Some(("spec.host", "Required value")),
        ),
        (
            "dr duplicate subset",
            leak(format!(
                "{DR}  host: a\n  subsets: [{{name: v1}}, {{name: v1}}]\n"
            )),
            Some(("spec.subsets[1].name", "duplicate subset name")),
        ),
        (
            "dr subset label wildcard",
            leak(format!(
                "{DR}  host: a\n  subsets: [{{name: v1, labels: {{v: '*'}}}}]\n"
            )),
            Some((
                "spec.subsets[0].labels.v",
                "wildcard not allowed in label value",
            )),
        ),
        (
            "dr bad lb enum",
            leak(format!(
                "{DR}  host: a\n  trafficPolicy: {{loadBalancer: {{simple: FASTEST}}}}\n"
            )),
            Some((
                "spec.trafficPolicy.loadBalancer.simple",
                "Unsupported value: \"FASTEST\"",
            )),
        ),
        (
            "dr maglev prime",
            leak(format!(
                "{DR}  host: a\n  trafficPolicy: {{loadBalancer: {{consistentHash: {{useSourceIp: true, maglev: {{tableSize: 1000}}}}}}}}\n"
            )),
            Some((
                "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
                "prime",
            )),
        ),
        (
            "dr warmup both",
            leak(format!(
                "{DR}  host: a\n  trafficPolicy: {{loadBalancer: {{warmupDurationSecs: 10s, warmup: {{duration: 10s}}}}}}\n"
            )),
            Some((
                "spec.trafficPolicy.loadBalancer",
                "only one of warmupDurationSecs or warmup",
            )),
        ),
        (
            "dr istio mutual with certs",
            leak(format!(
                "{DR}  host: a\n  trafficPolicy: {{tls: {{mode: ISTIO_MUTUAL, clientCertificate: /a}}}}\n"
            )),
            Some(("spec.trafficPolicy.tls", "ISTIO_MUTUAL")),
        ),
        (
            "dr mutual without certs",
            leak(format!(
                "{DR}  host: a\n  trafficPolicy: {{tls: {{mode: MUTUAL}}}}\n"
            )),
            Some((
                "spec.trafficPolicy.tls.clientCertificate",
                "client certificate required",
            )),
        ),
        (
            "dr ejection percent",
            leak(format!(
                "{DR}  host: a\n  trafficPolicy: {{outlierDetection: {{maxEjectionPercent: 150}}}}\n"
            )),
            Some((
                "spec.trafficPolicy.outlierDetection.maxEjectionPercent",
                "[0, 100]",
            )),
        ),
        (
            "dr port level duplicate",
            leak(format!(
                "{DR}  host: a\n  trafficPolicy: {{portLevelSettings: [{{port: {{number: 80}}}}, {{port: {{number: 80}}}}]}}\n"
            )),
            Some((
                "spec.trafficPolicy.portLevelSettings[1].port.number",
                "duplicate",
            )),
        ),
        (
            "dr distribute sum",
            leak(format!(
                "{DR}  host: a\n  trafficPolicy: {{loadBalancer: {{localityLbSetting: {{distribute: [{{from: a/*, to: {{b/*: 50}}}}]}}}}}}\n"
            )),
            Some((
                "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to",
                "must be 100",
            )),
        ),
        // Gateway
        (
            "gw no servers",
            leak(format!("{GW}  selector: {{istio: ingressgateway}}\n")),
            Some(("spec.servers", "at least one server")),
        ),
        (
            "gw https without tls",
            leak(format!(
                "{GW}  servers: [{{port: {{number: 443, name: https, protocol: HTTPS}}, hosts: ['*']}}]\n"
            )),
            Some(("spec.servers[0].tls", "must have TLS settings")),
        ),
        (
            "gw http with tls mode",
            leak(format!(
                "{GW}  servers: [{{port: {{number: 80, name: http, protocol: HTTP}}, hosts: ['*'], tls: {{mode: SIMPLE, credentialName: c}}}}]\n"
            )),
            Some(("spec.servers[0].tls", "plain text")),
        ),
        (
            "gw https redirect ok",
            leak(format!(
                "{GW}  servers: [{{port: {{number: 80, name: http, protocol: HTTP}}, hosts: ['*'], tls: {{httpsRedirect: true}}}}]\n"
            )),
            None,
        ),
        (
            "gw bad protocol",
            leak(format!(
                "{GW}  servers: [{{port: {{number: 80, name: http, protocol: FTP}}, hosts: ['*']}}]\n"
            )),
            Some(("spec.servers[0].port.protocol", "unrecognized protocol")),
        ),
        (
            "gw duplicate port name",
            leak(format!(
                "{GW}  servers: [{{port: {{number: 80, name: http, protocol: HTTP}}, hosts: ['*']}}, {{port: {{number: 81, name: http, protocol: HTTP}}, hosts: ['*']}}]\n"
            )),
            Some(("spec.servers[1].port.name", "must be unique")),
        ),
        (
            "gw bad host ns",
            leak(format!(
                "{GW}  servers: [{{port: {{number: 80, name: http, protocol: HTTP}}, hosts: ['Foo_/a.com']}}]\n"
            )),
            Some(("spec.servers[0].hosts[0]", "invalid namespace")),
        ),
        (
            "gw credential exclusive",
            leak(format!(
                "{GW}  servers: [{{port: {{number: 443, name: https, protocol: HTTPS}}, hosts: ['*'], tls: {{mode: SIMPLE, credentialName: a, credentialNames: [b]}}}}]\n"
            )),
            Some((
                "spec.servers[0].tls",
                "only one of credentialName or credentialNames",
            )),
        ),
        // ServiceEntry
        (
            "se dns wildcard",
            leak(format!(
                "{SE}  hosts: ['*.foo.com']\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: DNS\n"
            )),
            Some(("spec.hosts[0]", "cannot be a wildcard")),
        ),
        (
            "se cidr with dns",
            leak(format!(
                "{SE}  hosts: [a.com]\n  addresses: [10.0.0.0/8]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: DNS\n  endpoints: [{{address: b.com}}]\n"
            )),
            Some((
                "spec.addresses[0]",
                "CIDR addresses are allowed only for NONE/STATIC",
            )),
        ),
        (
            "se duplicate port number",
            leak(format!(
                "{SE}  hosts: [a.com]\n  ports: [{{number: 80, name: a}}, {{number: 80, name: b}}]\n"
            )),
            Some(("spec.ports[1].number", "port number cannot be duplicated")),
        ),
        (
            "se selector and endpoints",
            leak(format!(
                "{SE}  hosts: [a.com]\n  workloadSelector: {{labels: {{app: a}}}}\n  endpoints: [{{address: 1.1.1.1}}]\n  resolution: STATIC\n"
            )),
            Some(("spec", "only one of WorkloadSelector or Endpoints")),
        ),
        (
            "se endpoint port undeclared",
            leak(format!(
                "{SE}  hosts: [a.com]\n  ports: [{{number: 80, name: http}}]\n  resolution: STATIC\n  endpoints: [{{address: 1.1.1.1, ports: {{grpc: 90}}}}]\n"
            )),
            Some(("spec.endpoints[0].ports.grpc", "not declared")),
        ),
        (
            "se round robin endpoints",
            leak(format!(
                "{SE}  hosts: [a.com]\n  resolution: DNS_ROUND_ROBIN\n  endpoints: [{{address: a.com}}, {{address: b.com}}]\n"
            )),
            Some((
                "spec.endpoints",
                "DNS_ROUND_ROBIN mode cannot have multiple endpoints",
            )),
        ),
        (
            "se uds relative",
            leak(format!(
                "{SE}  hosts: [a.com]\n  resolution: STATIC\n  endpoints: [{{address: 'unix://rel/sock'}}]\n"
            )),
            Some(("spec.endpoints[0].address", "absolute path")),
        ),
        // Sidecar
        (
            "sidecar empty",
            leak(format!("{SC}  workloadSelector: {{labels: {{app: a}}}}\n")),
            Some(("spec", "empty configuration")),
        ),
        (
            "sidecar host form",
            leak(format!("{SC}  egress: [{{hosts: [foo.com]}}]\n")),
            Some(("spec.egress[0].hosts[0]", "namespace/dnsName")),
        ),
        (
            "sidecar catch-all not last",
            leak(format!(
                "{SC}  egress: [{{hosts: ['*/*']}}, {{port: {{number: 80, protocol: HTTP, name: h}}, hosts: ['./*']}}]\n"
            )),
            Some(("spec.egress[0]", "should be the last")),
        ),
        (
            "sidecar default endpoint",
            leak(format!(
                "{SC}  ingress: [{{port: {{number: 80, protocol: HTTP, name: h}}, defaultEndpoint: '10.0.0.1:80'}}]\n"
            )),
            Some(("spec.ingress[0].defaultEndpoint", "invalid defaultEndpoint")),
        ),
        (
            "sidecar egress proxy",
            leak(format!(
                "{SC}  outboundTrafficPolicy: {{mode: REGISTRY_ONLY, egressProxy: {{host: a}}}}\n"
            )),
            Some(("spec.outboundTrafficPolicy.egressProxy", "ALLOW_ANY")),
        ),
        // Security
        (
            "ap custom without provider",
            leak(format!("{AP}  action: CUSTOM\n  rules: [{{}}]\n")),
            Some(("spec.provider.name", "requires a provider")),
        ),
        (
            "ap provider on allow",
            leak(format!("{AP}  provider: {{name: x}}\n  rules: [{{}}]\n")),
            Some(("spec.provider", "CUSTOM")),
        ),
        (
            "ap empty from",
            leak(format!("{AP}  rules: [{{from: []}}]\n")),
            Some(("spec.rules[0].from", "must not be empty")),
        ),
        (
            "ap empty source",
            leak(format!("{AP}  rules: [{{from: [{{source: {{}}}}]}}]\n")),
            Some(("spec.rules[0].from[0].source", "must not be empty")),
        ),
        (
            "ap bad ip block",
            leak(format!(
                "{AP}  rules: [{{from: [{{source: {{ipBlocks: [1.2.3]}}}}]}}]\n"
            )),
            Some(("spec.rules[0].from[0].source.ipBlocks[0]", "not a valid IP")),
        ),
        (
            "ap bad port",
            leak(format!(
                "{AP}  rules: [{{to: [{{operation: {{ports: [http]}}}}]}}]\n"
            )),
            Some(("spec.rules[0].to[0].operation.ports[0]", "invalid port")),
        ),
        (
            "ap middle wildcard",
            leak(format!(
                "{AP}  rules: [{{from: [{{source: {{principals: ['a*b']}}}}]}}]\n"
            )),
            Some((
                "spec.rules[0].from[0].source.principals[0]",
                "prefix or suffix",
            )),
        ),
        (
            "ap bad path template",
            leak(format!(
                "{AP}  rules: [{{to: [{{operation: {{paths: ['/a/{{**}}/b']}}}}]}}]\n"
            )),
            Some(("spec.rules[0].to[0].operation.paths[0]", "last operator")),
        ),
        (
            "ap unknown condition",
            leak(format!(
                "{AP}  rules: [{{when: [{{key: request.foo, values: [a]}}]}}]\n"
            )),
            Some(("spec.rules[0].when[0].key", "unknown attribute")),
        ),
        (
            "ap condition without values",
            leak(format!("{AP}  rules: [{{when: [{{key: source.ip}}]}}]\n")),
            Some(("spec.rules[0].when[0]", "values or notValues")),
        ),
        (
            "ap destination namespace",
            leak(format!(
                "{AP}  rules: [{{when: [{{key: destination.namespace, values: [a]}}]}}]\n"
            )),
            Some(("spec.rules[0].when[0].key", "use the policy's namespace")),
        ),
        (
            "ap claims ok",
            leak(format!(
                "{AP}  rules: [{{when: [{{key: 'request.auth.claims[groups]', values: [a]}}]}}]\n"
            )),
            None,
        ),
        (
            "ap selector and targetRefs",
            leak(format!(
                "{AP}  selector: {{matchLabels: {{a: b}}}}\n  targetRefs: [{{kind: Gateway, group: gateway.networking.k8s.io, name: g}}]\n"
            )),
            Some(("spec", "only one of targetRefs or selector")),
        ),
        (
            "ap cross namespace ref",
            leak(format!(
                "{AP}  targetRefs: [{{kind: Gateway, group: gateway.networking.k8s.io, name: g, namespace: other}}]\n"
            )),
            Some(("spec.targetRefs[0].namespace", "cross namespace")),
        ),
        (
            "pa selector key wildcard",
            leak(format!("{PA}  selector: {{matchLabels: {{'a*': b}}}}\n")),
            Some((
                "spec.selector.matchLabels.a*",
                "wildcard not allowed in label key",
            )),
        ),
        (
            "pa port out of range",
            leak(format!(
                "{PA}  selector: {{matchLabels: {{a: b}}}}\n  portLevelMtls: {{'70000': {{mode: STRICT}}}}\n"
            )),
            Some(("spec.portLevelMtls.70000", "port must be between 1-65535")),
        ),
        (
            "ra jwks both",
            leak(format!(
                "{RA}  jwtRules: [{{issuer: a, jwksUri: 'https://x', jwks: '{{}}'}}]\n"
            )),
            Some(("spec.jwtRules[0]", "only one of jwks or jwksUri")),
        ),
        (
            "ra jwks_uri alias",
            leak(format!(
                "{RA}  jwtRules: [{{issuer: a, jwks_uri: 'ftp://x'}}]\n"
            )),
            Some(("spec.jwtRules[0].jwksUri", "url must have scheme")),
        ),
        (
            "ra no issuer",
            leak(format!("{RA}  jwtRules: [{{audiences: [a]}}]\n")),
            Some(("spec.jwtRules[0].issuer", "issuer must be set")),
        ),
        // Telemetry
        (
            "telemetry remove with value",
            leak(format!(
                "{TM}  metrics: [{{overrides: [{{tagOverrides: {{a: {{operation: REMOVE, value: x}}}}}}]}}]\n"
            )),
            Some((
                "spec.metrics[0].overrides[0].tagOverrides.a",
                "must not be set when operation is REMOVE",
            )),
        ),
        (
            "telemetry sampling",
            leak(format!(
                "{TM}  tracing: [{{randomSamplingPercentage: 200}}]\n"
            )),
            Some(("spec.tracing[0].randomSamplingPercentage", "[0, 100]")),
        ),
        (
            "telemetry metric enum",
            leak(format!(
                "{TM}  metrics: [{{overrides: [{{match: {{metric: LATENCY}}}}]}}]\n"
            )),
            Some((
                "spec.metrics[0].overrides[0].match.metric",
                "Unsupported value: \"LATENCY\"",
            )),
        ),
        // Documents
        (
            "unknown top-level field",
            leak(format!(
                "{VS}  hosts: [a]\n  http:\n  - {}extra: 1\n",
                &ROUTE[4..]
            )),
            Some(("extra", "unknown field")),
        ),
        (
            "unserved version",
            "apiVersion: security.istio.io/v1alpha1\nkind: PeerAuthentication\nmetadata: {name: x}\n",
            Some(("", "is not served")),
        ),
        (
            "unknown istio kind",
            "apiVersion: networking.istio.io/v1\nkind: Mesh\nmetadata: {name: x}\n",
            Some(("", "unknown kind")),
        ),
        (
            "missing name",
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nspec: {servers: [{port: {number: 80, name: h, protocol: HTTP}, hosts: ['*']}]}\n",
            Some(("metadata.name", "Required value")),
        ),
    ]
}

#[test]
fn rules() {
    let mut failures = Vec::new();
    for (name, doc, want) in cases() {
        let loaded = load("case.yaml", doc, &Options::default());
        let mut messages = loaded.messages;
        messages.extend(analyze(&loaded.resources));
        let errors: Vec<_> = messages
            .iter()
            .filter(|m| m.level == Level::Error)
            .collect();
        let ok = match want {
            None => errors.is_empty(),
            Some((path, text)) => errors
                .iter()
                .any(|m| m.path == path && m.text.contains(text)),
        };
        if !ok {
            let got: Vec<String> = errors.iter().map(|m| m.to_string()).collect();
            failures.push(format!("{name}: want {want:?}, got {got:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let doc = format!(
        "{VS}  hosts: [a]\n  http:\n  - route: [{{destination: {{host: a, port: {{number: 0}}}}, weight: -1}}]\n    timeout: 0s\n    fault: {{}}\n"
    );
    let loaded = load("many.yaml", &doc, &Options::default());
    let errors = analyze(&loaded.resources);
    let paths: Vec<&str> = errors.iter().map(|m| m.path.as_str()).collect();
    for want in [
        "spec.http[0].route[0].destination.port.number",
        "spec.http[0].route[0].weight",
        "spec.http[0].timeout",
        "spec.http[0].fault",
    ] {
        assert!(paths.contains(&want), "{want} missing from {paths:?}");
    }
}
