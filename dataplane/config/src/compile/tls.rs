//! Transport sockets and protocol options: Envoy's `DownstreamTlsContext` (listener filter
//! chains) and `UpstreamTlsContext` (clusters) into spar-tls specs, built into rustls
//! configs here, once per config load; `Http2ProtocolOptions` into [`Http2Settings`].
//!
//! The one impure step of `compile`: building a TLS context reads the PEM files it names
//! (and looks at the clock, for expiry warnings only). A file that cannot be read or parsed
//! is a config error at the field that names it, like any other.

use envoy_types::pb::envoy::config::core::v3::{
    DataSource, Http2ProtocolOptions, TransportSocket, data_source, transport_socket,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, DownstreamTlsContext, SdsSecretConfig, SubjectAltNameMatcher, TlsCertificate,
    TlsParameters, UpstreamTlsContext, common_tls_context, downstream_tls_context,
    subject_alt_name_matcher, tls_parameters::TlsProtocol,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher;
use prost::Message;
use rustls::pki_types::UnixTime;
use spar_tls::{CertKey, ClientTls, Pem, SanMatcher, SanType, ServerTls, StringMatch, TlsParams};

use super::Ctx;
use crate::allowlist::{DOWNSTREAM_TLS, RAW_BUFFER, UPSTREAM_TLS};
use crate::error::FieldPath;
use crate::snapshot::{DEFAULT_HTTP2, DownstreamTls, Http2Settings, UpstreamTls};

/// Envoy's bounds on `max_concurrent_streams` and the window sizes.
const MAX_STREAMS: u32 = 2_147_483_647;
const MIN_WINDOW: u32 = 65_535;
const MAX_WINDOW: u32 = 2_147_483_647;

/// `http2_protocol_options`, with Spar's bounded defaults for what is absent.
pub(super) fn http2_options(
    ctx: &mut Ctx<'_>,
    o: Option<&Http2ProtocolOptions>,
    p: &FieldPath,
) -> Http2Settings {
    let Some(o) = o else { return DEFAULT_HTTP2 };
    let mut out = DEFAULT_HTTP2;
    if let Some(v) = o.max_concurrent_streams {
        if (1..=MAX_STREAMS).contains(&v.value) {
            out.max_concurrent_streams = v.value;
        } else {
            ctx.error(
                &p.field("max_concurrent_streams"),
                format!("max_concurrent_streams must be from 1 to {MAX_STREAMS}"),
            );
        }
    }
    for (field, value, slot) in [
        (
            "initial_stream_window_size",
            o.initial_stream_window_size,
            &mut out.initial_stream_window_size,
        ),
        (
            "initial_connection_window_size",
            o.initial_connection_window_size,
            &mut out.initial_connection_window_size,
        ),
    ] {
        if let Some(v) = value {
            if (MIN_WINDOW..=MAX_WINDOW).contains(&v.value) {
                *slot = v.value;
            } else {
                ctx.error(
                    &p.field(field),
                    format!("{field} must be from {MIN_WINDOW} to {MAX_WINDOW}"),
                );
            }
        }
    }
    out
}

/// A filter chain's `transport_socket`: `None` for plaintext (absent, or raw_buffer).
pub(super) fn downstream(
    ctx: &mut Ctx<'_>,
    ts: Option<&TransportSocket>,
    p: &FieldPath,
) -> Result<Option<DownstreamTls>, ()> {
    let Some(any) = typed(ctx, ts, p, DOWNSTREAM_TLS)? else {
        return Ok(None);
    };
    let tp = p.field("typed_config");
    let d = DownstreamTlsContext::decode(any.as_slice()).map_err(|e| {
        ctx.error(&tp, format!("does not decode as {DOWNSTREAM_TLS}: {e}"));
    })?;
    let common = d.common_tls_context.unwrap_or_default();
    let cp = tp.field("common_tls_context");
    let mut spec = ServerTls {
        require_client_cert: d.require_client_certificate.is_some_and(|b| b.value),
        disable_session_tickets: matches!(
            d.session_ticket_keys_type,
            Some(
                downstream_tls_context::SessionTicketKeysType::DisableStatelessSessionResumption(
                    true
                )
            )
        ),
        ..ServerTls::default()
    };
    common_fields(ctx, &common, &cp, &mut spec.params, &mut spec.alpn)?;
    for (i, c) in common.tls_certificates.iter().enumerate() {
        let ip = cp.field("tls_certificates").index(i);
        spec.certs.extend(cert_key(ctx, c, &ip));
    }
    spec.sds_cert = sds_cert(ctx, &common, &cp)?;
    if spec.certs.is_empty() && spec.sds_cert.is_none() {
        ctx.error(
            &cp.field("tls_certificates"),
            "a server TLS context needs at least one certificate",
        );
        return Err(());
    }
    let (ca, sans, sds) = validation(ctx, &common, &cp)?;
    spec.client_ca = ca;
    spec.verify_client_san = sans;
    spec.sds_validation = sds;
    match spec.build_with(UnixTime::now(), ctx.secrets) {
        Ok(built) => {
            ctx.warnings
                .extend(built.warnings.iter().map(|w| format!("{tp}: {w}")));
            Ok(Some(DownstreamTls {
                spec,
                config: built.value,
            }))
        }
        Err(e) => {
            ctx.error(&cp, e.to_string());
            Err(())
        }
    }
}

/// A cluster's `transport_socket`: `None` for plaintext (absent, or raw_buffer).
pub(super) fn upstream(
    ctx: &mut Ctx<'_>,
    ts: Option<&TransportSocket>,
    p: &FieldPath,
) -> Result<Option<UpstreamTls>, ()> {
    let Some(any) = typed(ctx, ts, p, UPSTREAM_TLS)? else {
        return Ok(None);
    };
    let tp = p.field("typed_config");
    let u = UpstreamTlsContext::decode(any.as_slice()).map_err(|e| {
        ctx.error(&tp, format!("does not decode as {UPSTREAM_TLS}: {e}"));
    })?;
    let common = u.common_tls_context.unwrap_or_default();
    let cp = tp.field("common_tls_context");
    let mut spec = ClientTls {
        sni: (!u.sni.is_empty()).then(|| u.sni.clone()),
        verify_sni: u.auto_sni_san_validation,
        ..ClientTls::default()
    };
    if let Some(n) = u.max_session_keys {
        spec.session_cache = n.value as usize;
    }
    common_fields(ctx, &common, &cp, &mut spec.params, &mut spec.alpn)?;
    match common.tls_certificates.as_slice() {
        [] => {}
        [c] => {
            spec.client_cert = cert_key(ctx, c, &cp.field("tls_certificates").index(0));
        }
        _ => {
            ctx.error(
                &cp.field("tls_certificates"),
                "a client TLS context takes at most one certificate",
            );
            return Err(());
        }
    }
    spec.sds_cert = sds_cert(ctx, &common, &cp)?;
    let (ca, sans, sds) = validation(ctx, &common, &cp)?;
    spec.ca = ca;
    spec.verify_san = sans;
    spec.sds_validation = sds;
    match spec.build_with(UnixTime::now(), ctx.secrets) {
        Ok(built) => {
            ctx.warnings
                .extend(built.warnings.iter().map(|w| format!("{tp}: {w}")));
            Ok(Some(UpstreamTls {
                spec,
                built: built.value,
            }))
        }
        Err(e) => {
            ctx.error(&cp, e.to_string());
            Err(())
        }
    }
}

/// The socket's `typed_config` bytes when it holds `wanted`; `None` for raw_buffer or no
/// socket; an error for anything else (including the other side's TLS context).
fn typed(
    ctx: &mut Ctx<'_>,
    ts: Option<&TransportSocket>,
    p: &FieldPath,
    wanted: &str,
) -> Result<Option<Vec<u8>>, ()> {
    let Some(ts) = ts else { return Ok(None) };
    let Some(transport_socket::ConfigType::TypedConfig(any)) = &ts.config_type else {
        ctx.error(&p.field("typed_config"), "typed_config is required");
        return Err(());
    };
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    if name == RAW_BUFFER {
        Ok(None)
    } else if name == wanted {
        Ok(Some(any.value.clone()))
    } else {
        ctx.error(
            &p.field("typed_config"),
            format!("expected {wanted} or {RAW_BUFFER} here, found {name}"),
        );
        Err(())
    }
}

/// `tls_params` and `alpn_protocols`.
fn common_fields(
    ctx: &mut Ctx<'_>,
    common: &CommonTlsContext,
    cp: &FieldPath,
    params: &mut TlsParams,
    alpn: &mut Vec<Vec<u8>>,
) -> Result<(), ()> {
    if let Some(tp) = &common.tls_params {
        *params = tls_params(ctx, tp, &cp.field("tls_params"))?;
    }
    for (i, a) in common.alpn_protocols.iter().enumerate() {
        if a.is_empty() || a.len() > 255 {
            ctx.error(
                &cp.field("alpn_protocols").index(i),
                "an ALPN protocol name is 1 to 255 bytes",
            );
            return Err(());
        }
        alpn.push(a.as_bytes().to_vec());
    }
    Ok(())
}

fn tls_params(ctx: &mut Ctx<'_>, t: &TlsParameters, p: &FieldPath) -> Result<TlsParams, ()> {
    let version = |ctx: &mut Ctx<'_>, v: i32, field: &str| match TlsProtocol::try_from(v) {
        Ok(TlsProtocol::TlsAuto) => Ok(None),
        Ok(TlsProtocol::TlSv10) => Ok(Some(spar_tls::TlsVersion::Tls10)),
        Ok(TlsProtocol::TlSv11) => Ok(Some(spar_tls::TlsVersion::Tls11)),
        Ok(TlsProtocol::TlSv12) => Ok(Some(spar_tls::TlsVersion::Tls12)),
        Ok(TlsProtocol::TlSv13) => Ok(Some(spar_tls::TlsVersion::Tls13)),
        Err(_) => {
            ctx.error(&p.field(field), format!("unknown TLS version {v}"));
            Err(())
        }
    };
    Ok(TlsParams {
        min_version: version(
            ctx,
            t.tls_minimum_protocol_version,
            "tls_minimum_protocol_version",
        )?,
        max_version: version(
            ctx,
            t.tls_maximum_protocol_version,
            "tls_maximum_protocol_version",
        )?,
        cipher_suites: t.cipher_suites.clone(),
    })
}

/// `tls_certificate_sds_secret_configs`: the name of the one certificate secret, if any.
fn sds_cert(
    ctx: &mut Ctx<'_>,
    common: &CommonTlsContext,
    cp: &FieldPath,
) -> Result<Option<String>, ()> {
    match common.tls_certificate_sds_secret_configs.first() {
        None => Ok(None),
        Some(s) => sds_name(
            ctx,
            s,
            &cp.field("tls_certificate_sds_secret_configs").index(0),
        )
        .map(Some),
    }
}

fn sds_name(ctx: &mut Ctx<'_>, s: &SdsSecretConfig, p: &FieldPath) -> Result<String, ()> {
    if s.name.is_empty() {
        ctx.error(&p.field("name"), "name is required");
        return Err(());
    }
    Ok(s.name.clone())
}

/// Trusted CA, subject alt name matchers, SDS trust bundle name.
type Validation = (Option<Pem>, Vec<SanMatcher>, Option<String>);

/// The validation context: trusted CA, subject alt name matchers, and the SDS trust
/// bundle's name (`validation_context_sds_secret_config`, alone or in a
/// `combined_validation_context` with the matchers).
fn validation(
    ctx: &mut Ctx<'_>,
    common: &CommonTlsContext,
    cp: &FieldPath,
) -> Result<Validation, ()> {
    use common_tls_context::ValidationContextType as V;
    let (v, vp, sds) = match &common.validation_context_type {
        None => return Ok((None, Vec::new(), None)),
        Some(V::ValidationContext(v)) => (v, cp.field("validation_context"), None),
        Some(V::ValidationContextSdsSecretConfig(s)) => {
            let name = sds_name(ctx, s, &cp.field("validation_context_sds_secret_config"))?;
            return Ok((None, Vec::new(), Some(name)));
        }
        Some(V::CombinedValidationContext(c)) => {
            let p = cp.field("combined_validation_context");
            let Some(s) = &c.validation_context_sds_secret_config else {
                ctx.error(
                    &p.field("validation_context_sds_secret_config"),
                    "validation_context_sds_secret_config is required",
                );
                return Err(());
            };
            let name = sds_name(ctx, s, &p.field("validation_context_sds_secret_config"))?;
            let Some(v) = &c.default_validation_context else {
                return Ok((None, Vec::new(), Some(name)));
            };
            (v, p.field("default_validation_context"), Some(name))
        }
        Some(_) => {
            ctx.error(
                cp,
                "this validation context type is not supported by spar-proxy yet",
            );
            return Err(());
        }
    };
    let ca = match &v.trusted_ca {
        Some(d) => Some(data(ctx, Some(d), &vp.field("trusted_ca")).ok_or(())?),
        None => None,
    };
    let mut sans = Vec::with_capacity(v.match_typed_subject_alt_names.len());
    for (i, m) in v.match_typed_subject_alt_names.iter().enumerate() {
        sans.push(san(
            ctx,
            m,
            &vp.field("match_typed_subject_alt_names").index(i),
        )?);
    }
    Ok((ca, sans, sds))
}

fn san(ctx: &mut Ctx<'_>, m: &SubjectAltNameMatcher, p: &FieldPath) -> Result<SanMatcher, ()> {
    use subject_alt_name_matcher::SanType as T;
    let san_type = match T::try_from(m.san_type) {
        Ok(T::Dns) => SanType::Dns,
        Ok(T::Uri) => SanType::Uri,
        _ => {
            ctx.error(
                &p.field("san_type"),
                "only DNS and URI subject alt names are supported by spar-proxy yet",
            );
            return Err(());
        }
    };
    let Some(sm) = &m.matcher else {
        ctx.error(&p.field("matcher"), "matcher is required");
        return Err(());
    };
    use string_matcher::MatchPattern as M;
    let mp = p.field("matcher");
    let matcher = match &sm.match_pattern {
        Some(M::Exact(s)) => StringMatch::Exact(s.clone()),
        Some(M::Prefix(s)) => StringMatch::Prefix(s.clone()),
        Some(M::Suffix(s)) => StringMatch::Suffix(s.clone()),
        Some(M::Contains(s)) => StringMatch::Contains(s.clone()),
        _ => {
            ctx.error(
                &mp,
                "only exact, prefix, suffix and contains subject alt name matchers are supported by spar-proxy yet",
            );
            return Err(());
        }
    };
    Ok(SanMatcher {
        san_type,
        matcher,
        ignore_case: sm.ignore_case,
    })
}

/// One `tls_certificates` entry: its chain and key; errors for either are reported.
fn cert_key(ctx: &mut Ctx<'_>, c: &TlsCertificate, p: &FieldPath) -> Option<CertKey> {
    let chain = data(
        ctx,
        c.certificate_chain.as_ref(),
        &p.field("certificate_chain"),
    );
    let key = data(ctx, c.private_key.as_ref(), &p.field("private_key"));
    Some(CertKey {
        cert_chain: chain?,
        private_key: key?,
    })
}

/// A `DataSource` holding PEM: a file name or inline text.
fn data(ctx: &mut Ctx<'_>, d: Option<&DataSource>, p: &FieldPath) -> Option<Pem> {
    match d.and_then(|d| d.specifier.as_ref()) {
        Some(data_source::Specifier::Filename(f)) if !f.is_empty() => Some(Pem::File(f.into())),
        Some(data_source::Specifier::InlineString(s)) => Some(Pem::Inline(s.as_bytes().to_vec())),
        Some(data_source::Specifier::InlineBytes(b)) => Some(Pem::Inline(b.clone())),
        Some(data_source::Specifier::EnvironmentVariable(_)) => {
            ctx.error(
                &p.field("environment_variable"),
                "environment_variable is not supported by spar-proxy yet",
            );
            None
        }
        _ => {
            ctx.error(p, "filename, inline_string or inline_bytes is required");
            None
        }
    }
}
