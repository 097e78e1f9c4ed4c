use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
use envoy_types::pb::envoy::config::rbac::v3::SourcedMetadata;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    FilterStateMatcher, MetadataMatcher, RegexMatcher,
};
use envoy_types::pb::envoy::r#type::v3::{Int32Range, Int64Range};
use envoy_types::pb::google::api::expr::v1alpha1::Expr;
use envoy_types::pb::google::protobuf::{Duration as PbDuration, UInt32Value};
use spar_route::StringMatch;

use super::*;
use crate::test_support::{Req, exact, hdr, prefix};

fn perm(rule: permission::Rule) -> PbPermission {
    PbPermission { rule: Some(rule) }
}

fn prin(id: principal::Identifier) -> PbPrincipal {
    PbPrincipal {
        identifier: Some(id),
    }
}

fn pb_exact(s: &str) -> PbStringMatcher {
    PbStringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::Exact(s.into())),
        ignore_case: false,
    }
}

fn pb_prefix(s: &str) -> PbStringMatcher {
    PbStringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::Prefix(s.into())),
        ignore_case: false,
    }
}

fn pb_header(name: &str, m: PbStringMatcher) -> PbHeaderMatcher {
    PbHeaderMatcher {
        name: name.into(),
        header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(m)),
        ..Default::default()
    }
}

fn pb_path(m: PbStringMatcher) -> PbPathMatcher {
    PbPathMatcher {
        rule: Some(path_matcher::Rule::Path(m)),
    }
}

fn pb_cidr(a: &str, len: Option<u32>) -> CidrRange {
    CidrRange {
        address_prefix: a.into(),
        prefix_len: len.map(|value| UInt32Value { value }),
    }
}

fn pb_policy(permissions: Vec<PbPermission>, principals: Vec<PbPrincipal>) -> PbPolicy {
    PbPolicy {
        permissions,
        principals,
        ..Default::default()
    }
}

fn pb_rbac(action: rbac::Action, policies: Vec<(&str, PbPolicy)>) -> PbRbac {
    PbRbac {
        action: action as i32,
        policies: policies
            .into_iter()
            .map(|(n, p)| (n.to_owned(), p))
            .collect(),
        audit_logging_options: None,
    }
}

fn any_policy() -> PbPolicy {
    pb_policy(
        vec![perm(permission::Rule::Any(true))],
        vec![prin(principal::Identifier::Any(true))],
    )
}

/// The errors of compiling `r`, as `path: message` strings.
fn errors(r: &PbRbac) -> Vec<String> {
    compile_rbac(r)
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// One policy `p` with permission `x` and any principal: the errors.
fn permission_errors(x: permission::Rule) -> Vec<String> {
    let pol = pb_policy(vec![perm(x)], vec![prin(principal::Identifier::Any(true))]);
    errors(&pb_rbac(rbac::Action::Allow, vec![("p", pol)]))
}

/// One policy `p` with any permission and principal `x`: the errors.
fn principal_errors(x: principal::Identifier) -> Vec<String> {
    let pol = pb_policy(vec![perm(permission::Rule::Any(true))], vec![prin(x)]);
    errors(&pb_rbac(rbac::Action::Allow, vec![("p", pol)]))
}

#[test]
fn istio_deny_and_allow_filters_compile() {
    use permission::Rule as R;
    use principal::Identifier as I;
    // What Istio emits for `DENY: to.operation.paths [/admin*], methods [POST]` from
    // namespace x, then `ALLOW from namespace x`.
    let deny = PbHttpRbac {
        rules: Some(pb_rbac(
            rbac::Action::Deny,
            vec![(
                "ns[foo]-policy[deny-admin]-rule[0]",
                pb_policy(
                    vec![perm(R::AndRules(permission::Set {
                        rules: vec![
                            perm(R::OrRules(permission::Set {
                                rules: vec![perm(R::UrlPath(pb_path(pb_prefix("/admin"))))],
                            })),
                            perm(R::OrRules(permission::Set {
                                rules: vec![perm(R::Header(pb_header(
                                    ":method",
                                    pb_exact("POST"),
                                )))],
                            })),
                        ],
                    }))],
                    vec![prin(I::AndIds(principal::Set {
                        ids: vec![prin(I::OrIds(principal::Set {
                            ids: vec![prin(I::Authenticated(principal::Authenticated {
                                principal_name: Some(PbStringMatcher {
                                    match_pattern: Some(string_matcher::MatchPattern::SafeRegex(
                                        RegexMatcher {
                                            regex: ".*/ns/x/.*".into(),
                                            ..Default::default()
                                        },
                                    )),
                                    ignore_case: false,
                                }),
                            }))],
                        }))],
                    }))],
                ),
            )],
        )),
        rules_stat_prefix: "istio_dry_run_".into(),
        ..Default::default()
    };
    let f = compile_http_filter(&deny).unwrap();
    assert_eq!(f.kind, FilterKind::Http);
    assert_eq!(f.stat_prefix, "istio_dry_run_");
    assert_eq!(f.shadow_rules, None);
    let rules = f.rules.as_ref().unwrap();
    assert_eq!(rules.action(), Action::Deny);
    let p = &rules.policies()[0];
    assert_eq!(p.name, "ns[foo]-policy[deny-admin]-rule[0]");
    assert_eq!(
        p.permissions,
        [Permission::And(vec![
            Permission::Or(vec![Permission::UrlPath(prefix("/admin"))]),
            Permission::Or(vec![Permission::Header(hdr(":method", "POST"))]),
        ])]
    );
    let x = "spiffe://cluster.local/ns/x/sa/default";
    let post_admin = Req::get("/admin/users").method("POST").principal(x);
    let d = f.evaluate(&post_admin).enforced.unwrap();
    assert!(!d.allowed);
    assert_eq!(d.matched_policy, Some("ns[foo]-policy[deny-admin]-rule[0]"));
    assert!(f.evaluate(&Req::get("/admin").principal(x)).allowed());
    assert!(
        f.evaluate(
            &Req::get("/admin")
                .method("POST")
                .principal("spiffe://cluster.local/ns/y/sa/a")
        )
        .allowed()
    );
}

#[test]
fn every_supported_leaf_compiles() {
    use permission::Rule as R;
    use principal::Identifier as I;
    #[allow(deprecated)]
    let pol = pb_policy(
        vec![
            perm(R::Any(true)),
            perm(R::Header(pb_header("X-User", pb_exact("a")))),
            perm(R::Header(PbHeaderMatcher {
                name: "x-n".into(),
                header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::RangeMatch(
                    Int64Range { start: 1, end: 5 },
                )),
                invert_match: true,
                treat_missing_header_as_empty: true,
            })),
            perm(R::Header(PbHeaderMatcher {
                name: "x-p".into(),
                header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::PrefixMatch(
                    "v".into(),
                )),
                ..Default::default()
            })),
            perm(R::Header(PbHeaderMatcher {
                name: "x-q".into(),
                ..Default::default()
            })),
            perm(R::UrlPath(pb_path(pb_exact("/x")))),
            perm(R::DestinationIp(pb_cidr("10.1.2.3", Some(16)))),
            perm(R::DestinationPort(443)),
            perm(R::DestinationPortRange(Int32Range {
                start: 0,
                end: 65536,
            })),
            perm(R::RequestedServerName(PbStringMatcher {
                match_pattern: Some(string_matcher::MatchPattern::Suffix(".svc".into())),
                ignore_case: true,
            })),
            perm(R::NotRule(Box::new(perm(R::Any(true))))),
        ],
        vec![
            prin(I::Any(true)),
            prin(I::Authenticated(principal::Authenticated {
                principal_name: None,
            })),
            prin(I::SourceIp(pb_cidr("::1", Some(128)))),
            prin(I::DirectRemoteIp(pb_cidr("10.0.0.0", Some(8)))),
            prin(I::RemoteIp(pb_cidr("0.0.0.0", None))),
            prin(I::Header(pb_header("x-id", pb_prefix("a")))),
            prin(I::UrlPath(pb_path(pb_prefix("/p")))),
            prin(I::NotId(Box::new(prin(I::Any(true))))),
        ],
    );
    let r = compile_rbac(&pb_rbac(rbac::Action::Log, vec![("all", pol)])).unwrap();
    assert_eq!(r.action(), Action::Log);
    let p = &r.policies()[0];
    let cidr = |a: &str, l| Cidr::new(a.parse().unwrap(), l).unwrap();
    assert_eq!(
        p.permissions,
        [
            Permission::Any,
            Permission::Header(hdr("x-user", "a")),
            Permission::Header(HeaderMatcher {
                name: "x-n".into(),
                rule: HeaderRule::Range { start: 1, end: 5 },
                invert: true,
                treat_missing_as_empty: true,
            }),
            Permission::Header(HeaderMatcher {
                name: "x-p".into(),
                rule: HeaderRule::Value(prefix("v")),
                invert: false,
                treat_missing_as_empty: false,
            }),
            Permission::Header(HeaderMatcher {
                name: "x-q".into(),
                rule: HeaderRule::Present(true),
                invert: false,
                treat_missing_as_empty: false,
            }),
            Permission::UrlPath(exact("/x")),
            Permission::DestinationIp(cidr("10.1.0.0", 16)),
            Permission::DestinationPort(443),
            Permission::DestinationPortRange {
                start: 0,
                end: 65536
            },
            Permission::RequestedServerName(StringMatcher {
                kind: StringMatch::Suffix(".svc".into()),
                ignore_case: true,
            }),
            Permission::Not(Box::new(Permission::Any)),
        ]
    );
    assert_eq!(
        p.principals,
        [
            Principal::Any,
            Principal::Authenticated(None),
            Principal::SourceIp(cidr("::1", 128)),
            Principal::DirectRemoteIp(cidr("10.0.0.0", 8)),
            Principal::RemoteIp(cidr("0.0.0.0", 0)),
            Principal::Header(HeaderMatcher {
                name: "x-id".into(),
                rule: HeaderRule::Value(prefix("a")),
                invert: false,
                treat_missing_as_empty: false,
            }),
            Principal::UrlPath(prefix("/p")),
            Principal::Not(Box::new(Principal::Any)),
        ]
    );
}

#[test]
fn unsupported_fields_are_refused_with_their_path() {
    use permission::Rule as R;
    use principal::Identifier as I;
    let ext = || TypedExtensionConfig {
        name: "x".into(),
        typed_config: None,
    };
    let pp = "policies.p.permissions[0]";
    let ip = "policies.p.principals[0]";
    #[allow(deprecated)]
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            permission_errors(R::Metadata(MetadataMatcher::default())),
            format!("{pp}.metadata: metadata matchers are not supported by spar-proxy"),
        ),
        (
            permission_errors(R::SourcedMetadata(SourcedMetadata::default())),
            format!("{pp}.sourced_metadata: metadata matchers are not supported by spar-proxy"),
        ),
        (
            permission_errors(R::Matcher(ext())),
            format!("{pp}.matcher: RBAC matcher extensions are not supported by spar-proxy"),
        ),
        (
            permission_errors(R::UriTemplate(ext())),
            format!("{pp}.uri_template: URI template matchers are not supported by spar-proxy"),
        ),
        (
            principal_errors(I::Metadata(MetadataMatcher::default())),
            format!("{ip}.metadata: metadata matchers are not supported by spar-proxy"),
        ),
        (
            principal_errors(I::SourcedMetadata(SourcedMetadata::default())),
            format!("{ip}.sourced_metadata: metadata matchers are not supported by spar-proxy"),
        ),
        (
            principal_errors(I::FilterState(FilterStateMatcher::default())),
            format!("{ip}.filter_state: filter state matchers are not supported by spar-proxy"),
        ),
        (
            principal_errors(I::Custom(ext())),
            format!("{ip}.custom: custom principal extensions are not supported by spar-proxy"),
        ),
        (
            // Nested: the path goes through the sets.
            permission_errors(R::AndRules(permission::Set {
                rules: vec![
                    perm(R::Any(true)),
                    perm(R::NotRule(Box::new(perm(R::RequestedServerName(
                        PbStringMatcher {
                            match_pattern: Some(string_matcher::MatchPattern::Custom(
                                envoy_types::pb::xds::core::v3::TypedExtensionConfig::default(),
                            )),
                            ignore_case: false,
                        },
                    ))))),
                ],
            })),
            format!(
                "{pp}.and_rules.rules[1].not_rule.requested_server_name.custom: custom string \
                 matchers are not supported by spar-proxy"
            ),
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, [want]);
    }
    let mut cel = any_policy();
    cel.condition = Some(Expr::default());
    assert_eq!(
        errors(&pb_rbac(rbac::Action::Allow, vec![("p", cel)])),
        ["policies.p.condition: CEL conditions are not supported by spar-proxy"]
    );
    let mut audit = pb_rbac(rbac::Action::Log, vec![]);
    audit.audit_logging_options = Some(rbac::AuditLoggingOptions {
        audit_condition: 1,
        logger_configs: vec![],
    });
    assert_eq!(
        errors(&audit),
        ["audit_logging_options: audit loggers are not supported by spar-proxy; use action LOG"]
    );
    let with_matcher = PbHttpRbac {
        matcher: Some(Default::default()),
        shadow_matcher: Some(Default::default()),
        ..Default::default()
    };
    let e = compile_http_filter(&with_matcher).unwrap_err();
    let paths: Vec<&str> = e.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["matcher", "shadow_matcher"]);
}

#[test]
fn envoy_validation_rules_are_checked() {
    use permission::Rule as R;
    use principal::Identifier as I;
    let pp = "policies.p.permissions[0]";
    let ip = "policies.p.principals[0]";
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            permission_errors(R::Any(false)),
            format!("{pp}.any: must be true when set"),
        ),
        (
            principal_errors(I::Any(false)),
            format!("{ip}.any: must be true when set"),
        ),
        (
            permission_errors(R::OrRules(permission::Set { rules: vec![] })),
            format!("{pp}.or_rules.rules: at least one rule is required"),
        ),
        (
            principal_errors(I::AndIds(principal::Set { ids: vec![] })),
            format!("{ip}.and_ids.ids: at least one id is required"),
        ),
        (
            permission_errors(R::DestinationPort(65536)),
            format!("{pp}.destination_port: must be at most 65535"),
        ),
        (
            permission_errors(R::DestinationPortRange(Int32Range { start: 10, end: 10 })),
            format!(
                "{pp}.destination_port_range: [10, 10) is not a port range: 0 <= start < end \
                 <= 65536 is required"
            ),
        ),
        (
            permission_errors(R::DestinationPortRange(Int32Range { start: -1, end: 10 })),
            format!(
                "{pp}.destination_port_range: [-1, 10) is not a port range: 0 <= start < end \
                 <= 65536 is required"
            ),
        ),
        (
            permission_errors(R::DestinationIp(pb_cidr("10.0.0.300", Some(8)))),
            format!("{pp}.destination_ip.address_prefix: `10.0.0.300` is not an IP address"),
        ),
        (
            principal_errors(I::RemoteIp(pb_cidr("10.0.0.0", Some(33)))),
            format!("{ip}.remote_ip.prefix_len: 33 is longer than the address (32 bits)"),
        ),
        (
            principal_errors(I::DirectRemoteIp(pb_cidr("::", Some(300)))),
            format!("{ip}.direct_remote_ip.prefix_len: 300 is longer than the address (128 bits)"),
        ),
        (
            permission_errors(R::UrlPath(PbPathMatcher { rule: None })),
            format!("{pp}.url_path.path: path is required"),
        ),
        (
            permission_errors(R::UrlPath(pb_path(pb_prefix("")))),
            format!("{pp}.url_path.path.prefix: must not be empty"),
        ),
        (
            permission_errors(R::UrlPath(pb_path(PbStringMatcher::default()))),
            format!(
                "{pp}.url_path.path: one of exact, prefix, suffix, contains, safe_regex is \
                 required"
            ),
        ),
        (
            principal_errors(I::Authenticated(principal::Authenticated {
                principal_name: Some(PbStringMatcher {
                    match_pattern: Some(string_matcher::MatchPattern::SafeRegex(RegexMatcher {
                        regex: "(".into(),
                        ..Default::default()
                    })),
                    ignore_case: false,
                }),
            })),
            format!(
                "{ip}.authenticated.principal_name.safe_regex.regex: invalid regex: unclosed \
                 group"
            ),
        ),
        (
            permission_errors(R::Header(pb_header("bad name", pb_exact("a")))),
            format!(
                "{pp}.header.name: `bad name` is not a header name (a token, or one of \
                 :method, :path, :authority, :scheme)"
            ),
        ),
        (
            permission_errors(R::Header(PbHeaderMatcher {
                name: "x".into(),
                header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::RangeMatch(
                    Int64Range { start: 5, end: 5 },
                )),
                ..Default::default()
            })),
            format!("{pp}.header.range_match: start must be below end"),
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, [want]);
    }
    #[allow(deprecated)]
    let empty_exact = permission_errors(R::Header(PbHeaderMatcher {
        name: "x".into(),
        header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::ExactMatch(
            String::new(),
        )),
        ..Default::default()
    }));
    assert_eq!(
        empty_exact,
        [format!("{pp}.header.exact_match: must not be empty")]
    );
    assert_eq!(
        errors(&pb_rbac(
            rbac::Action::Allow,
            vec![("p", PbPolicy::default())]
        )),
        [
            "policies.p.permissions: at least one permission is required",
            "policies.p.principals: at least one principal is required"
        ]
    );
    assert_eq!(
        permission_errors(permission::Rule::NotRule(Box::new(PbPermission {
            rule: None
        }))),
        [format!(
            "{pp}.not_rule: one of any, header, url_path, destination_ip, destination_port, \
             destination_port_range, requested_server_name, and_rules, or_rules, not_rule is \
             required"
        )]
    );
    let mut bad_action = pb_rbac(rbac::Action::Allow, vec![]);
    bad_action.action = 7;
    assert_eq!(errors(&bad_action), ["action: unknown action 7"]);
}

#[test]
fn every_problem_is_reported_in_policy_name_order() {
    use permission::Rule as R;
    let bad = |port| {
        pb_policy(
            vec![perm(R::Any(true)), perm(R::DestinationPort(port))],
            vec![prin(principal::Identifier::Any(false))],
        )
    };
    let r = pb_rbac(
        rbac::Action::Deny,
        vec![("b", bad(70000)), ("ok", any_policy()), ("a", bad(80_000))],
    );
    assert_eq!(
        errors(&r),
        [
            "policies.a.permissions[1].destination_port: must be at most 65535",
            "policies.a.principals[0].any: must be true when set",
            "policies.b.permissions[1].destination_port: must be at most 65535",
            "policies.b.principals[0].any: must be true when set",
        ]
    );
    let e = compile_rbac(&r).unwrap_err();
    assert!(e.to_string().starts_with(
        "policies.a.permissions[1].destination_port: must be at most 65535; policies.a."
    ));
}

#[test]
fn nesting_is_bounded() {
    let mut p = perm(permission::Rule::Any(true));
    for _ in 0..MAX_DEPTH {
        p = perm(permission::Rule::NotRule(Box::new(p)));
    }
    let ok = pb_policy(
        vec![p.clone()],
        vec![prin(principal::Identifier::Any(true))],
    );
    assert!(compile_rbac(&pb_rbac(rbac::Action::Allow, vec![("p", ok)])).is_ok());
    let deeper = perm(permission::Rule::NotRule(Box::new(p)));
    let e = permission_errors(deeper.rule.unwrap());
    assert_eq!(e.len(), 1);
    assert!(
        e[0].ends_with(&format!(
            ".not_rule: rules are nested more than {MAX_DEPTH} levels deep"
        )),
        "{e:?}"
    );
}

#[test]
fn policies_are_sorted_by_name() {
    let r = compile_rbac(&pb_rbac(
        rbac::Action::Allow,
        vec![
            ("b", any_policy()),
            ("a", any_policy()),
            ("B", any_policy()),
        ],
    ))
    .unwrap();
    let names: Vec<&str> = r.policies().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["B", "a", "b"]);
}

#[test]
fn network_filter() {
    let f = PbNetworkRbac {
        rules: Some(pb_rbac(rbac::Action::Allow, vec![])),
        shadow_rules: Some(pb_rbac(rbac::Action::Deny, vec![("p", any_policy())])),
        stat_prefix: "tcp.".into(),
        shadow_rules_stat_prefix: "shadow.".into(),
        enforcement_type: network_rbac::EnforcementType::Continuous as i32,
        delay_deny: Some(PbDuration {
            seconds: 1,
            nanos: 500_000_000,
        }),
        ..Default::default()
    };
    let c = compile_network_filter(&f).unwrap();
    assert_eq!(c.kind, FilterKind::Network);
    assert_eq!(c.stat_prefix, "tcp.");
    assert_eq!(c.shadow_stat_prefix, "shadow.");
    assert_eq!(c.enforcement, Enforcement::Continuous);
    assert_eq!(c.delay_deny, Some(Duration::from_millis(1500)));
    // Rules present and empty with action ALLOW: every connection is denied.
    let d = c.evaluate(&Req::tcp());
    assert!(!d.allowed());
    assert!(!d.shadow.unwrap().allowed);

    let bad = PbNetworkRbac {
        enforcement_type: 9,
        delay_deny: Some(PbDuration {
            seconds: -1,
            nanos: 0,
        }),
        matcher: Some(Default::default()),
        ..Default::default()
    };
    let e = compile_network_filter(&bad).unwrap_err();
    let paths: Vec<&str> = e.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["stat_prefix", "matcher", "enforcement_type", "delay_deny"]
    );

    // No rules: nothing enforced.
    let none = PbNetworkRbac {
        stat_prefix: "s".into(),
        ..Default::default()
    };
    let c = compile_network_filter(&none).unwrap();
    assert_eq!((c.rules.as_ref(), c.delay_deny), (None, None));
    assert!(c.evaluate(&Req::tcp()).allowed());
}

#[test]
fn per_route() {
    assert_eq!(
        compile_http_per_route(&PbRbacPerRoute { rbac: None }).unwrap(),
        PerRoute::Disabled
    );
    let over = PbRbacPerRoute {
        rbac: Some(PbHttpRbac {
            rules: Some(pb_rbac(rbac::Action::Deny, vec![("p", any_policy())])),
            ..Default::default()
        }),
    };
    let PerRoute::Override(f) = compile_http_per_route(&over).unwrap() else {
        panic!("expected an override");
    };
    assert!(!f.evaluate(&Req::get("/")).allowed());
    let bad = PbRbacPerRoute {
        rbac: Some(PbHttpRbac {
            rules: Some(pb_rbac(
                rbac::Action::Deny,
                vec![("p", PbPolicy::default())],
            )),
            ..Default::default()
        }),
    };
    let e = compile_http_per_route(&bad).unwrap_err();
    assert_eq!(e.0[0].path, "rbac.rules.policies.p.permissions");
}
