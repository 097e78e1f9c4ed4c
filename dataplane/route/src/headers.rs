//! Header mutations (`request_headers_to_add` / `_remove`, `response_*`) at route
//! configuration, virtual host, route and weighted cluster level, with Envoy's `%VAR%`
//! value templates and its four append actions.
//!
//! The caller applies levels most specific first (weighted cluster, route, virtual host,
//! route configuration: Envoy's default order, so the route configuration's overwrite wins)
//! by folding each into one [`HeaderEdits`] plan, then edits the header block once.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::SocketAddr;

/// Route configuration level mutations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigHeaders {
    /// `request_headers_to_add` / `_remove`.
    pub request: HeaderMutation,
    /// `response_headers_to_add` / `_remove`.
    pub response: HeaderMutation,
}

/// One level's `*_headers_to_add` and `*_headers_to_remove`. Removals happen before
/// additions, as in Envoy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderMutation {
    /// Fields to add, in config order.
    pub add: Vec<HeaderAppend>,
    /// Lower-case names to remove.
    pub remove: Vec<String>,
}

impl HeaderMutation {
    /// True when it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// Envoy `HeaderValueOption`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderAppend {
    /// Lower-case name.
    pub name: String,
    /// Value template.
    pub value: HeaderValue,
    /// What to do when the header exists.
    pub action: AppendAction,
    /// Add the header even when its value renders empty (Envoy `keep_empty_value`).
    pub keep_empty_value: bool,
}

/// Envoy `HeaderAppendAction`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AppendAction {
    /// Add a field, whether or not the header exists (default; `append: true`).
    AppendIfExistsOrAdd,
    /// Add only when the header does not exist.
    AddIfAbsent,
    /// Replace every field of the header, or add it (`append: false`).
    OverwriteIfExistsOrAdd,
    /// Replace every field of the header only when it exists.
    OverwriteIfExists,
}

/// A parsed header value template: literal text and `%VAR%` substitutions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderValue {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    DownstreamRemoteAddress,
    DownstreamRemoteAddressWithoutPort,
    DownstreamRemotePort,
    DownstreamLocalAddress,
    DownstreamLocalAddressWithoutPort,
    DownstreamLocalPort,
    UpstreamRemoteAddress,
    Hostname,
    Protocol,
    RequestHeader(String),
}

/// What `%VAR%` templates may read.
pub trait FormatVars {
    /// The client's address.
    fn downstream_remote(&self) -> SocketAddr;
    /// The address the client connected to.
    fn downstream_local(&self) -> SocketAddr;
    /// The upstream host's address, once chosen.
    fn upstream_remote(&self) -> Option<SocketAddr>;
    /// This machine's host name.
    fn hostname(&self) -> &str;
    /// The downstream protocol, e.g. `HTTP/1.1`.
    fn protocol(&self) -> &str;
    /// A request header by lower-case name.
    fn request_header(&self, lower_name: &str) -> Option<Cow<'_, [u8]>>;
}

/// Whether `name` is a valid header field name (an RFC 9110 token).
pub fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `value` may be sent as a header value: no CR, LF or NUL (RFC 9110 §5.5).
pub fn valid_header_value(value: &[u8]) -> bool {
    !value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0)
}

impl HeaderValue {
    /// Parses a template. `%%` is a literal `%`; variables: `%DOWNSTREAM_REMOTE_ADDRESS%`,
    /// `%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%`, `%DOWNSTREAM_REMOTE_PORT%`,
    /// `%DOWNSTREAM_LOCAL_ADDRESS%`, `%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%`,
    /// `%DOWNSTREAM_LOCAL_PORT%`, `%UPSTREAM_REMOTE_ADDRESS%`, `%HOSTNAME%`, `%PROTOCOL%`,
    /// `%REQ(name)%`. Anything else, an unterminated `%`, CR, LF or NUL is an error.
    pub fn parse(s: &str) -> Result<Self, String> {
        if !valid_header_value(s.as_bytes()) {
            return Err("header value must not contain CR, LF or NUL".into());
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('%') {
            literal.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            if let Some(r) = rest.strip_prefix('%') {
                literal.push('%');
                rest = r;
                continue;
            }
            let Some(end) = rest.find('%') else {
                return Err(format!(
                    "unterminated variable in `{s}` (write %% for a literal %)"
                ));
            };
            let var = &rest[..end];
            rest = &rest[end + 1..];
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(variable(var)?);
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self { parts })
    }

    /// A value without variables.
    pub fn literal(s: &str) -> Self {
        Self {
            parts: vec![Part::Literal(s.to_owned())],
        }
    }

    /// Appends the value to `out`. An unknown upstream address or an absent request header
    /// renders as nothing.
    pub fn render(&self, vars: &dyn FormatVars, out: &mut Vec<u8>) {
        let mut text = String::new();
        for part in &self.parts {
            text.clear();
            // Writing to a String cannot fail.
            let _ = match part {
                Part::Literal(s) => {
                    out.extend_from_slice(s.as_bytes());
                    continue;
                }
                Part::DownstreamRemoteAddress => write!(text, "{}", vars.downstream_remote()),
                Part::DownstreamRemoteAddressWithoutPort => {
                    write!(text, "{}", vars.downstream_remote().ip())
                }
                Part::DownstreamRemotePort => write!(text, "{}", vars.downstream_remote().port()),
                Part::DownstreamLocalAddress => write!(text, "{}", vars.downstream_local()),
                Part::DownstreamLocalAddressWithoutPort => {
                    write!(text, "{}", vars.downstream_local().ip())
                }
                Part::DownstreamLocalPort => write!(text, "{}", vars.downstream_local().port()),
                Part::UpstreamRemoteAddress => match vars.upstream_remote() {
                    Some(a) => write!(text, "{a}"),
                    None => Ok(()),
                },
                Part::Hostname => text.write_str(vars.hostname()),
                Part::Protocol => text.write_str(vars.protocol()),
                Part::RequestHeader(name) => {
                    if let Some(v) = vars.request_header(name) {
                        out.extend_from_slice(&v);
                    }
                    continue;
                }
            };
            out.extend_from_slice(text.as_bytes());
        }
    }
}

fn variable(var: &str) -> Result<Part, String> {
    Ok(match var {
        "DOWNSTREAM_REMOTE_ADDRESS" => Part::DownstreamRemoteAddress,
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => Part::DownstreamRemoteAddressWithoutPort,
        "DOWNSTREAM_REMOTE_PORT" => Part::DownstreamRemotePort,
        "DOWNSTREAM_LOCAL_ADDRESS" => Part::DownstreamLocalAddress,
        "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => Part::DownstreamLocalAddressWithoutPort,
        "DOWNSTREAM_LOCAL_PORT" => Part::DownstreamLocalPort,
        "UPSTREAM_REMOTE_ADDRESS" => Part::UpstreamRemoteAddress,
        "HOSTNAME" => Part::Hostname,
        "PROTOCOL" => Part::Protocol,
        _ => {
            let name = var
                .strip_prefix("REQ(")
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| format!("variable %{var}% is not supported by spar-proxy"))?;
            if !valid_header_name(name) {
                return Err(format!("%REQ({name})%: `{name}` is not a header name"));
            }
            Part::RequestHeader(name.to_ascii_lowercase())
        }
    })
}

/// Planned edits to a header block: names whose original fields are dropped, then fields
/// appended in order. Built by folding [`HeaderMutation`]s in, most specific level first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    /// Lower-case names: every ORIGINAL field with this name is dropped.
    pub remove: Vec<String>,
    /// Fields to append after the removals, in order.
    pub add: Vec<(String, Vec<u8>)>,
}

impl HeaderEdits {
    /// Folds `m` in: its removals, then its additions. `has(name)` says whether the
    /// ORIGINAL block has that header; edits already planned are taken into account (a
    /// removed header no longer exists, an added one does).
    pub fn apply(&mut self, m: &HeaderMutation, has: &dyn Fn(&str) -> bool, vars: &dyn FormatVars) {
        for name in &m.remove {
            self.drop_header(name);
        }
        let mut value = Vec::new();
        for a in &m.add {
            value.clear();
            a.value.render(vars, &mut value);
            if value.is_empty() && !a.keep_empty_value {
                continue;
            }
            let exists = self.exists(&a.name, has);
            match a.action {
                AppendAction::AppendIfExistsOrAdd => {}
                AppendAction::AddIfAbsent if exists => continue,
                AppendAction::AddIfAbsent => {}
                AppendAction::OverwriteIfExists if !exists => continue,
                AppendAction::OverwriteIfExists | AppendAction::OverwriteIfExistsOrAdd => {
                    self.drop_header(&a.name);
                }
            }
            self.add.push((a.name.clone(), value.clone()));
        }
    }

    /// True when nothing is planned.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }

    /// Whether header `name` exists after the edits planned so far.
    fn exists(&self, name: &str, has: &dyn Fn(&str) -> bool) -> bool {
        self.add.iter().any(|(n, _)| n == name) || (!self.removes(name) && has(name))
    }

    fn removes(&self, name: &str) -> bool {
        self.remove.iter().any(|n| n == name)
    }

    fn drop_header(&mut self, name: &str) {
        if !self.removes(name) {
            self.remove.push(name.to_owned());
        }
        self.add.retain(|(n, _)| n != name);
    }
}

#[cfg(test)]
mod tests;
