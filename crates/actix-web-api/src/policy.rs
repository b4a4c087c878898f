//! What each route allows, decided from the route the router will match (its
//! resource pattern), never from the raw request path.
//!
//! A raw path can spell one route many ways (`/metrics`, `/%6detrics`, `/metric%73`):
//! the router matches the path after decoding what needs no encoding, so a decision
//! on the raw text can be walked around. Here the path is decoded exactly as the
//! router decodes it, the resource map gives the pattern that path matches, and the
//! pattern alone selects the [`Policy`]: which scope the route needs, whether its
//! answers are negotiated (JSON or XML), whether it is a Markr compatibility route.
//! The middleware computes it once per request ([`Route::of`]); the gate, content
//! negotiation, deadlines and the OpenAPI document all read it from there.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::LazyLock;

use actix_web::HttpMessage as _;
use actix_web::dev::ServiceRequest;
use actix_web::http::Method;

use crate::auth::Scope;

/// How a kind of route is guarded and answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// Health and readiness: no token; JSON or XML.
    Open,
    /// The API documents and their page: no token; one media type of their own.
    OpenDocument,
    /// The API: `read` for `GET`/`HEAD`, `write` otherwise; JSON or XML.
    Api,
    /// The API's lists that also stream as CSV or NDJSON (records, aggregates): scopes
    /// as the API; JSON, XML, `text/csv` or `application/x-ndjson`.
    Export,
    /// An import's raw document: scopes as the API; its own media type.
    ApiDocument,
    /// What operators manage through the API (subscriptions, sources): `read` for
    /// `GET`/`HEAD`, `admin` otherwise; JSON or XML.
    Managed,
    /// The Markr compatibility routes: scopes as the API; they answer only what the
    /// original service did (no `400` for a malformed `Request-Timeout`).
    Markr,
    /// Operations (`/metrics`, `/admin/…`): `admin`; their own media type.
    Admin,
}

thread_local! {
    /// The policies routes declare while [`DECLARED`] registers them.
    static DECLARING: RefCell<Option<Vec<(String, Policy)>>> = const { RefCell::new(None) };
}

/// Every routed pattern and the policy its registration declared
/// ([`crate::routes::resource`]), found by registering the routes once, as the
/// application does. A pattern not declared is `Admin` (closed by default); a request
/// that matches no route is `Api` (authenticated, then `404`).
static DECLARED: LazyLock<HashMap<String, Policy>> = LazyLock::new(|| {
    DECLARING.with(|d| *d.borrow_mut() = Some(Vec::new()));
    // Not the documents' `configure`: rendering them asks for these policies.
    let _ = actix_web::App::new().configure(crate::routes::configure);
    crate::openapi::declare();
    let declared = DECLARING
        .with(|d| d.borrow_mut().take())
        .unwrap_or_default();
    let mut policies = HashMap::new();
    for (pattern, policy) in declared {
        let before = policies.insert(pattern.clone(), policy);
        assert!(
            before.is_none_or(|b| b == policy),
            "{pattern} is registered with two policies"
        );
    }
    policies
});

/// Declares `pattern`'s policy; called where the route is registered.
pub(crate) fn declare(pattern: &str, policy: Policy) {
    DECLARING.with(|d| {
        if let Some(declared) = d.borrow_mut().as_mut() {
            declared.push((pattern.to_owned(), policy));
        }
    });
}

impl Policy {
    /// The policy of a routed pattern (`None`: no route matches).
    pub(crate) fn of_pattern(pattern: Option<&str>) -> Self {
        let Some(pattern) = pattern else {
            return Self::Api;
        };
        DECLARED.get(pattern).copied().unwrap_or(Self::Admin)
    }

    /// The scope a request with `method` needs, or `None` for reads of the open routes.
    pub(crate) fn scope(self, method: &Method) -> Option<Scope> {
        let reads = method == Method::GET || method == Method::HEAD;
        match self {
            // Open to reads only: the resource map ignores method guards, so another
            // method would otherwise pass unauthenticated to whatever route follows.
            Self::Open | Self::OpenDocument if reads => None,
            Self::Admin => Some(Scope::Admin),
            Self::Api | Self::Export | Self::ApiDocument | Self::Markr | Self::Managed if reads => {
                Some(Scope::Read)
            }
            Self::Managed => Some(Scope::Admin),
            Self::Open
            | Self::OpenDocument
            | Self::Api
            | Self::Export
            | Self::ApiDocument
            | Self::Markr => Some(Scope::Write),
        }
    }

    /// Whether answers are JSON or XML by `Accept` (else the route's own type).
    pub(crate) fn is_negotiated(self) -> bool {
        matches!(
            self,
            Self::Open | Self::Api | Self::Export | Self::Markr | Self::Managed
        )
    }

    /// Whether this is a Markr compatibility route.
    /// Whether the route also streams CSV and NDJSON.
    pub(crate) fn exports(self) -> bool {
        self == Self::Export
    }

    pub(crate) fn is_compatibility(self) -> bool {
        self == Self::Markr
    }
}

/// The route a request will be served by: its pattern (`None`: no route) and policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// The matched resource pattern (`/v1/datasets/{dataset}`).
    pub(crate) pattern: Option<String>,
    /// What it allows.
    pub(crate) policy: Policy,
}

impl Route {
    /// The route `req` matches, computed once and kept in its extensions.
    pub(crate) fn of(req: &ServiceRequest) -> Self {
        if let Some(route) = req.extensions().get::<Self>() {
            return route.clone();
        }
        // The path as the router sees it: decoded where no encoding was needed.
        let routed = req.match_info().get_ref().path();
        let pattern = req.resource_map().match_pattern(routed);
        let route = Self {
            policy: Policy::of_pattern(pattern.as_deref()),
            pattern,
        };
        req.extensions_mut().insert(route.clone());
        route
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_need_the_scope_their_pattern_and_method_imply() {
        let scope =
            |pattern: &str, method: Method| Policy::of_pattern(Some(pattern)).scope(&method);
        assert_eq!(scope("/healthz", Method::GET), None);
        assert_eq!(scope("/openapi/v1.json", Method::POST), Some(Scope::Write));
        assert_eq!(scope("/openapi/v1.json", Method::GET), None);
        assert_eq!(scope("/metrics", Method::GET), Some(Scope::Admin));
        assert_eq!(scope("/v1/datasets", Method::GET), Some(Scope::Read));
        assert_eq!(scope("/v1/datasets", Method::HEAD), Some(Scope::Read));
        assert_eq!(scope("/import", Method::POST), Some(Scope::Write));
        assert_eq!(scope("/admin/state", Method::GET), Some(Scope::Admin));
        assert_eq!(
            scope("/v1/datasets/{dataset}/jobs", Method::GET),
            Some(Scope::Read)
        );
        assert_eq!(
            scope("/v1/datasets/{dataset}/jobs", Method::POST),
            Some(Scope::Admin)
        );
        assert_eq!(
            scope("/v1/datasets/{dataset}/records", Method::POST),
            Some(Scope::Write)
        );
        // A pattern without a declared policy is closed; no route at all is the API's.
        assert_eq!(scope("/not/registered", Method::GET), Some(Scope::Admin));
        assert_eq!(
            Policy::of_pattern(None).scope(&Method::GET),
            Some(Scope::Read)
        );
    }

    #[test]
    fn documents_and_metrics_are_not_negotiated() {
        assert!(!Policy::of_pattern(Some("/metrics")).is_negotiated());
        assert!(!Policy::of_pattern(Some("/docs/{_:.*}")).is_negotiated());
        let document = "/v1/datasets/{dataset}/imports/{import}/document";
        assert!(!Policy::of_pattern(Some(document)).is_negotiated());
        assert!(Policy::of_pattern(Some("/v2/datasets")).is_negotiated());
        assert!(Policy::of_pattern(Some("/import")).is_compatibility());
        assert!(!Policy::of_pattern(Some("/v1/datasets")).is_compatibility());
    }
}
