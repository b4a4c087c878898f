//! Bearer tokens with scopes (DESIGN §13). Tokens are configured as the hex SHA-256 of
//! their text, never the text itself; a presented token is hashed and compared with
//! every configured hash in constant time, so neither timing nor logs reveal one.
//!
//! Which scope a route needs is its policy's (declared where the route is registered,
//! `routes::resource`; looked up in `policy.rs`): none for health,
//! readiness and the API documents; `admin` for operations; `read` for `GET` and
//! `HEAD`; `write` for everything else. `admin` includes `read` and `write`. With no
//! token configured, authentication is off (and the server binds loopback only).

use std::fmt;

use actix_web::HttpRequest;
use actix_web::http::header::AUTHORIZATION;
use sha2::{Digest as _, Sha256};

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Read datasets, records, imports and analytics.
    Read,
    /// Create datasets, publish contracts, import.
    Write,
    /// Operate the service: metrics and the management API; includes the others.
    Admin,
}

impl Scope {
    /// The scope's name in configuration and problem documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }

    fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            "admin" => Ok(Self::Admin),
            other => Err(format!(
                "unknown scope {other:?} (expected read, write or admin)"
            )),
        }
    }
}

/// One configured token: a name for logs and limits, the SHA-256 of its text, and
/// its scopes.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// Who holds it (logged; the token itself never is).
    pub name: String,
    sha256: [u8; 32],
    scopes: Vec<Scope>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .field("sha256", &"[redacted]")
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl Token {
    /// A token from its name, the hex SHA-256 of its text and its scope names.
    ///
    /// # Errors
    /// A message naming what is wrong (never echoing the hash).
    pub fn new(name: &str, sha256_hex: &str, scopes: &[&str]) -> Result<Self, String> {
        let name = name.trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(format!(
                "token name {name:?}: 1 or more of letters, digits, '-', '_', '.'"
            ));
        }
        let sha256 = hex32(sha256_hex.trim())
            .ok_or_else(|| format!("token {name}: the hash is not 64 hex digits"))?;
        let mut parsed = scopes
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| Scope::parse(s).map_err(|e| format!("token {name}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if parsed.is_empty() {
            return Err(format!("token {name}: no scope"));
        }
        parsed.sort();
        parsed.dedup();
        Ok(Self {
            name: name.to_owned(),
            sha256,
            scopes: parsed,
        })
    }

    /// Tokens in `INTAKE_AUTH_TOKENS` form: `name:sha256hex:scope,scope` entries
    /// separated by `;`.
    ///
    /// # Errors
    /// The first entry at fault.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, String> {
        text.split(';')
            .filter(|entry| !entry.trim().is_empty())
            .map(|entry| {
                let mut parts = entry.splitn(3, ':');
                let (Some(name), Some(hash), Some(scopes)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err("an auth token entry is name:sha256hex:scope,scope".to_owned());
                };
                let scopes: Vec<&str> = scopes.split(',').collect();
                Self::new(name, hash, &scopes)
            })
            .collect()
    }

    /// Its scopes.
    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0_u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Equal without an early exit: the time taken does not depend on where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Who is calling, as far as authentication could tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// Authentication is off: anyone on loopback.
    Anyone,
    /// A configured token's holder.
    Token(Token),
    /// No token, or one that matches none configured.
    Unknown,
}

/// What the gate decided about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Serve it.
    Allowed,
    /// `401`: no valid token.
    Unauthenticated(&'static str),
    /// `403`: a valid token without the scope.
    Forbidden(Scope),
}

/// Identifies the caller from the `Authorization` header.
pub(crate) fn identify(tokens: &[Token], req: &HttpRequest) -> Caller {
    if tokens.is_empty() {
        return Caller::Anyone;
    }
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty());
    let Some(presented) = presented else {
        return Caller::Unknown;
    };
    let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    // Compare with every token: no early exit tells which one nearly matched.
    let mut found = None;
    for token in tokens {
        if same(&token.sha256, &hash) && found.is_none() {
            found = Some(token);
        }
    }
    found.map_or(Caller::Unknown, |t| Caller::Token(t.clone()))
}

/// Whether `caller` may make a request needing `scope`.
pub(crate) fn decide(caller: &Caller, scope: Option<Scope>, has_header: bool) -> Verdict {
    let Some(scope) = scope else {
        return Verdict::Allowed;
    };
    match caller {
        Caller::Anyone => Verdict::Allowed,
        Caller::Token(token) if token.allows(scope) => Verdict::Allowed,
        Caller::Token(_) => Verdict::Forbidden(scope),
        Caller::Unknown if has_header => Verdict::Unauthenticated("the bearer token is not valid"),
        Caller::Unknown => Verdict::Unauthenticated(
            "this route needs a bearer token (Authorization: Bearer <token>)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn hash(text: &str) -> String {
        Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn the_environment_form_is_parsed_and_bad_entries_are_named() {
        let text = format!("front:{}:read;ops:{}:admin, read", hash("a"), hash("b"));
        let tokens = Token::parse_list(&text).unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[1].scopes(), [Scope::Read, Scope::Admin]);
        assert!(!format!("{tokens:?}").contains(&hash("a")));
        let e = Token::parse_list("front:abc:read").unwrap_err();
        assert!(e.contains("64 hex digits"), "{e}");
        let e = Token::parse_list(&format!("front:{}:root", hash("a"))).unwrap_err();
        assert!(e.contains("unknown scope \"root\""), "{e}");
        let e = Token::parse_list(&format!("front:{}", hash("a"))).unwrap_err();
        assert!(e.contains("name:sha256hex:scope"), "{e}");
    }

    #[test]
    fn a_token_is_known_by_its_hash_and_needs_the_scope() {
        let tokens = vec![
            Token::new("reader", &hash("r-secret"), &["read"]).unwrap(),
            Token::new("ops", &hash("o-secret"), &["admin"]).unwrap(),
        ];
        let req = |value: &str| {
            TestRequest::default()
                .insert_header((AUTHORIZATION, value))
                .to_http_request()
        };
        let reader = identify(&tokens, &req("Bearer r-secret"));
        assert!(matches!(&reader, Caller::Token(t) if t.name == "reader"));
        assert_eq!(decide(&reader, Some(Scope::Read), true), Verdict::Allowed);
        assert_eq!(
            decide(&reader, Some(Scope::Write), true),
            Verdict::Forbidden(Scope::Write)
        );
        let ops = identify(&tokens, &req("bearer  o-secret"));
        assert_eq!(decide(&ops, Some(Scope::Write), true), Verdict::Allowed);
        let wrong = identify(&tokens, &req("Bearer r-secreT"));
        assert_eq!(wrong, Caller::Unknown);
        assert!(matches!(
            decide(&wrong, Some(Scope::Read), true),
            Verdict::Unauthenticated(_)
        ));
        assert_eq!(identify(&tokens, &req("Basic r-secret")), Caller::Unknown);
        assert_eq!(decide(&wrong, None, true), Verdict::Allowed);
        assert_eq!(identify(&[], &req("x")), Caller::Anyone);
    }
}
