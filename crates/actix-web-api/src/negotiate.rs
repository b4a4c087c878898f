//! Content negotiation (DESIGN §11): every answer of the API, problem documents
//! included, is available as JSON (the default) or XML, chosen from `Accept`; a request
//! that accepts neither is a `406` before any work is done.
//!
//! Handlers write JSON; this middleware rewrites a JSON answer as XML when the client
//! prefers it, by one mapping for every route:
//!
//! - the root element is `<response>`, or `<problem xmlns="urn:ietf:rfc:7807">` for a
//!   problem document (`application/problem+xml`, as RFC 7807 appendix A has it);
//! - an object member is an element named by its key; a key that is not an XML name (a
//!   dimension value such as `9863`, say) is `<entry key="9863">`;
//! - an array is its items as `<item>` elements; `null` is an empty element with
//!   `nil="true"`; numbers and booleans are their JSON text;
//! - characters XML 1.0 cannot carry (control characters) become U+FFFD.
//!
//! The routes whose [`crate::policy::Policy`] is not negotiated (the API documents,
//! `/metrics`, an import's raw document) have one type of their own: they are never
//! `406`, and only their problem documents are rewritten.

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, VARY};
use actix_web::middleware::Next;
use actix_web::{HttpMessage as _, HttpResponse, ResponseError as _};
use serde_json::Value;

use crate::ApiError;
use crate::policy::Route;

/// What a client may be answered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Xml,
    /// `text/csv`, on an exporting route only ([`crate::policy::Policy::Export`]).
    Csv,
    /// `application/x-ndjson`, on an exporting route only.
    Ndjson,
}

/// The format `accept` prefers (JSON on a tie), or `None` when it accepts neither.
#[cfg(test)]
pub(crate) fn choose(accept: Option<&str>) -> Option<Format> {
    choose_with(accept, false)
}

/// The format `accept` prefers among JSON, XML and, when `exports`, CSV and NDJSON
/// (JSON on a tie, then XML), or `None` when it accepts none of them.
pub(crate) fn choose_with(accept: Option<&str>, exports: bool) -> Option<Format> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(Format::Json);
    };
    let (mut csv, mut ndjson) = (0.0_f64, 0.0_f64);
    let (mut json, mut xml) = (0.0_f64, 0.0_f64);
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").map(str::trim))
            .find_map(|q| q.parse::<f64>().ok())
            .unwrap_or(1.0)
            .clamp(0.0, 1.0);
        let (j, x) = match media.as_str() {
            "application/json" | "application/problem+json" => (true, false),
            "application/xml" | "text/xml" | "application/problem+xml" => (false, true),
            "*/*" | "application/*" => (true, true),
            "text/*" => (false, true),
            "text/csv" if exports => {
                csv = csv.max(q);
                (false, false)
            }
            "application/x-ndjson" if exports => {
                ndjson = ndjson.max(q);
                (false, false)
            }
            _ => (false, false),
        };
        if j {
            json = json.max(q);
        }
        if x {
            xml = xml.max(q);
        }
    }
    let best = [
        (json, Format::Json),
        (xml, Format::Xml),
        (csv, Format::Csv),
        (ndjson, Format::Ndjson),
    ]
    .into_iter()
    .filter(|(q, _)| *q > 0.0)
    // The first of the highest: JSON on a tie, then XML.
    .fold(None, |best: Option<(f64, Format)>, (q, f)| match best {
        Some((bq, _)) if bq >= q => best,
        _ => Some((q, f)),
    });
    best.map(|(_, f)| f)
}

/// The middleware (see the module documentation).
pub(crate) async fn negotiate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<BoxBody>>, actix_web::Error> {
    let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
    let policy = Route::of(&req).policy;
    let negotiated = policy.is_negotiated();
    let format = choose_with(accept, policy.exports());
    let Some(format) = format.or((!negotiated).then_some(Format::Json)) else {
        let answers = if policy.exports() {
            "application/json, application/xml, text/csv or application/x-ndjson"
        } else {
            "application/json or application/xml"
        };
        let error = ApiError::NotAcceptable(format!(
            "this route answers {answers}; Accept was {:?}",
            accept.unwrap_or_default()
        ));
        let res = error.error_response();
        return Ok(req.into_response(res).map_into_right_body());
    };
    if matches!(format, Format::Csv | Format::Ndjson) {
        // The handler streams the form asked for; its problems stay JSON.
        req.extensions_mut().insert(format);
        let res = next.call(req).await?.map_body(|_, b| b.boxed());
        let (req, mut res) = res.into_parts();
        res.headers_mut()
            .append(VARY, HeaderValue::from_static("accept"));
        return Ok(ServiceResponse::new(req, res).map_into_left_body());
    }
    match next.call(req).await {
        Ok(res) => {
            let res = res.map_body(|_, b| b.boxed());
            let (req, mut res) = res.into_parts();
            res.headers_mut()
                .append(VARY, HeaderValue::from_static("accept"));
            let res = if format == Format::Xml {
                as_xml(res, negotiated).await
            } else {
                res
            };
            Ok(ServiceResponse::new(req, res).map_into_left_body())
        }
        // An answer travelling as an error (a cancelled request) is rewritten too.
        Err(e) if format == Format::Xml => {
            let res = as_xml(e.error_response(), negotiated).await;
            Err(actix_web::error::InternalError::from_response(e.to_string(), res).into())
        }
        Err(e) => Err(e),
    }
}

/// `res` with its JSON body as XML (only a problem's, unless `all`); anything else
/// unchanged.
async fn as_xml(res: HttpResponse<BoxBody>, all: bool) -> HttpResponse<BoxBody> {
    let content_type = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (xml_type, problem) = match content_type.split(';').next().unwrap_or_default().trim() {
        "application/json" if all => ("application/xml", false),
        "application/problem+json" => ("application/problem+xml", true),
        _ => return res,
    };
    let (head, body) = res.into_parts();
    let Ok(bytes) = actix_web::body::to_bytes(body).await else {
        return head.set_body(BoxBody::new(()));
    };
    let Ok(value) = serde_json::from_slice::<Value>(&bytes) else {
        return head.set_body(BoxBody::new(bytes));
    };
    let mut res = head.set_body(BoxBody::new(to_xml(&value, problem)));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(xml_type));
    res.headers_mut().remove(CONTENT_LENGTH);
    res
}

/// A JSON document as XML (the mapping of the module documentation).
pub(crate) fn to_xml(value: &Value, problem: bool) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let (name, attributes) = if problem {
        ("problem", " xmlns=\"urn:ietf:rfc:7807\"")
    } else {
        ("response", "")
    };
    element(&mut out, name, attributes, value);
    out.push('\n');
    out
}

fn element(out: &mut String, name: &str, attributes: &str, value: &Value) {
    out.push('<');
    out.push_str(name);
    out.push_str(attributes);
    match value {
        Value::Null => {
            out.push_str(" nil=\"true\"/>");
            return;
        }
        Value::Bool(b) => {
            out.push('>');
            out.push_str(if *b { "true" } else { "false" });
        }
        Value::Number(n) => {
            out.push('>');
            out.push_str(&n.to_string());
        }
        Value::String(s) => {
            out.push('>');
            escape(out, s);
        }
        Value::Array(items) => {
            out.push('>');
            for item in items {
                element(out, "item", "", item);
            }
        }
        Value::Object(members) => {
            out.push('>');
            for (key, member) in members {
                if is_name(key) {
                    element(out, key, "", member);
                } else {
                    let mut attribute = String::from(" key=\"");
                    escape(&mut attribute, key);
                    attribute.push('"');
                    element(out, "entry", &attribute, member);
                }
            }
        }
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// Whether `key` can name an element as it is: an ASCII letter or `_`, then letters,
/// digits, `_`, `-` or `.`, and not starting with `xml`.
fn is_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        && !key.to_ascii_lowercase().starts_with("xml")
}

fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn exporting_routes_also_stream_csv_and_ndjson() {
        assert_eq!(choose_with(Some("text/csv"), true), Some(Format::Csv));
        assert_eq!(
            choose_with(Some("text/csv"), false),
            None,
            "elsewhere a 406"
        );
        assert_eq!(
            choose_with(Some("application/x-ndjson"), true),
            Some(Format::Ndjson)
        );
        assert_eq!(
            choose_with(Some("text/csv;q=0.5, application/json"), true),
            Some(Format::Json)
        );
        assert_eq!(choose_with(Some("*/*"), true), Some(Format::Json));
    }

    #[test]
    fn accept_chooses_by_quality_and_json_wins_ties() {
        assert_eq!(choose(None), Some(Format::Json));
        assert_eq!(choose(Some("*/*")), Some(Format::Json));
        assert_eq!(choose(Some("application/xml")), Some(Format::Xml));
        assert_eq!(choose(Some("text/xml")), Some(Format::Xml));
        assert_eq!(
            choose(Some("application/xml;q=0.5, application/json")),
            Some(Format::Json)
        );
        assert_eq!(
            choose(Some("application/json;q=0.2, application/xml;q=0.9")),
            Some(Format::Xml)
        );
        assert_eq!(choose(Some("application/problem+xml")), Some(Format::Xml));
        assert_eq!(choose(Some("image/png")), None);
        assert_eq!(choose(Some("application/json;q=0")), None);
        assert_eq!(choose(Some("text/html, */*;q=0.1")), Some(Format::Json));
    }

    #[test]
    fn json_maps_to_xml_one_way_for_every_answer() {
        let value = json!({
            "name": "exam-results", "count": 81, "mean": 50.8, "ok": true, "p75": null,
            "groups": [{"group": "9863"}, {"group": "a<b & \"c\""}],
            "filters": {"9863": "x", "test_id": "y"},
            "text": "bell\u{7}",
        });
        assert_eq!(
            to_xml(&value, false),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response><count>81</count>\
             <filters><entry key=\"9863\">x</entry><test_id>y</test_id></filters>\
             <groups><item><group>9863</group></item><item><group>a&lt;b &amp; &quot;c&quot;</group></item></groups>\
             <mean>50.8</mean><name>exam-results</name><ok>true</ok><p75 nil=\"true\"/>\
             <text>bell\u{FFFD}</text></response>\n"
        );
        let problem = to_xml(&json!({"status": 404, "code": "not_found"}), true);
        assert!(
            problem.contains("<problem xmlns=\"urn:ietf:rfc:7807\"><code>not_found</code><status>404</status></problem>"),
            "{problem}"
        );
    }
}
