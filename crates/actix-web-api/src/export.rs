//! Exports (issue 20): the routes of [`crate::policy::Policy::Export`] stream their
//! answer as CSV (a header row, then a row per record or group) or NDJSON (one JSON
//! object per line) when `Accept` prefers one. Records are read a page at a time in
//! key order ([`intake_domain::datasets::DatasetService::scan`]), so memory stays
//! bounded whatever the dataset's size; each page is written before the next is read.

use intake_domain::ports::RecordFilter;
use std::sync::Arc;

use actix_web::web::Bytes;
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse};
use intake_domain::DatasetName;
use intake_domain::Record;
use intake_domain::datasets::DatasetService;

use crate::ApiError;
use crate::dto::{GroupAggregateResponse, RecordResponse};
use crate::negotiate::Format;

/// Records read per page of an export.
const PAGE: u32 = 1000;

/// A streamed form the request asked for, when it asked for one.
pub(crate) fn requested(req: &HttpRequest) -> Option<Format> {
    req.extensions()
        .get::<Format>()
        .copied()
        .filter(|f| matches!(f, Format::Csv | Format::Ndjson))
}

fn media_type(format: Format) -> &'static str {
    match format {
        Format::Csv => "text/csv; charset=utf-8",
        _ => "application/x-ndjson",
    }
}

/// One CSV field: quoted when it holds a comma, a quote or a line break (quotes
/// doubled), as RFC 4180 has it.
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn row(fields: impl IntoIterator<Item = String>) -> String {
    let mut line = fields
        .into_iter()
        .map(|f| field(&f))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// What an export of records writes: the columns, and how a record becomes a line.
struct Shape {
    format: Format,
    dimensions: Vec<String>,
    measures: Vec<String>,
}

impl Shape {
    fn header(&self) -> Option<String> {
        (self.format == Format::Csv).then(|| {
            let mut columns = vec!["key".to_owned()];
            columns.extend(self.dimensions.iter().cloned());
            columns.extend(self.measures.iter().cloned());
            columns.extend(["version".to_owned(), "attributes".to_owned()]);
            row(columns)
        })
    }

    fn line(&self, record: &Record) -> String {
        if self.format == Format::Ndjson {
            let mut line = serde_json::to_string(&RecordResponse::from(record)).unwrap_or_default();
            line.push('\n');
            return line;
        }
        let mut fields = vec![record.key.canonical()];
        fields.extend(
            self.dimensions
                .iter()
                .map(|d| record.dimensions.get(d).unwrap_or_default().to_owned()),
        );
        fields.extend(self.measures.iter().map(|m| {
            record
                .measures
                .get(m)
                .map(|v| v.to_string())
                .unwrap_or_default()
        }));
        fields.push(
            record
                .version
                .map(|v| v.get().to_string())
                .unwrap_or_default(),
        );
        let attributes = record.attributes.to_json();
        let empty = attributes
            .as_object()
            .is_some_and(serde_json::Map::is_empty);
        fields.push(if empty {
            String::new()
        } else {
            attributes.to_string()
        });
        row(fields)
    }
}

/// Where an export is: the page to write, and where the next starts.
struct Cursor {
    datasets: Arc<DatasetService>,
    name: DatasetName,
    filters: RecordFilter,
    shape: Shape,
    page: Vec<Record>,
    /// Where the next page starts (`None`: this is the last).
    next: Option<String>,
    header: Option<String>,
}

/// Streams every record of `name` matching `filters` as `format`. The first page is
/// read before answering, so an unknown dataset or dimension is still a problem
/// document; a failure later ends the stream early (logged).
///
/// # Errors
/// What reading the first page gives.
pub(crate) async fn records(
    datasets: Arc<DatasetService>,
    name: DatasetName,
    filters: RecordFilter,
    format: Format,
) -> Result<HttpResponse, ApiError> {
    let (dimensions, measures) = datasets.columns(&name).await?;
    let (page, next) = datasets.scan(&name, &filters, None, PAGE).await?;
    let shape = Shape {
        format,
        dimensions,
        measures,
    };
    let cursor = Cursor {
        header: shape.header(),
        datasets,
        name,
        filters,
        shape,
        page,
        next,
    };
    let stream = futures_lite::stream::unfold(Some(cursor), |cursor| async move {
        let mut cursor = cursor?;
        let mut out = cursor.header.take().unwrap_or_default();
        if cursor.page.is_empty() && cursor.next.is_none() {
            return (!out.is_empty()).then(|| (Ok(Bytes::from(out)), None));
        }
        for record in &cursor.page {
            out.push_str(&cursor.shape.line(record));
        }
        let next = if let Some(after) = cursor.next.take() {
            match cursor
                .datasets
                .scan(&cursor.name, &cursor.filters, Some(after), PAGE)
                .await
            {
                Ok((page, next)) => {
                    cursor.page = page;
                    cursor.next = next;
                    Some(cursor)
                }
                Err(e) => {
                    tracing::warn!(dataset = %cursor.name, error = %e,
                        "an export stopped early: the next page could not be read");
                    return Some((Err(std::io::Error::other(e.to_string())), None));
                }
            }
        } else {
            None
        };
        Some((Ok::<_, std::io::Error>(Bytes::from(out)), next))
    });
    Ok(HttpResponse::Ok()
        .content_type(media_type(format))
        .streaming(stream))
}

/// An aggregate's groups as `format`: a CSV row or a JSON line per group.
pub(crate) fn groups(groups: &[GroupAggregateResponse], format: Format) -> HttpResponse {
    let mut out = String::new();
    if format == Format::Csv {
        out.push_str(&row([
            "group", "count", "sum", "mean", "stddev", "min", "p25", "p50", "p75", "max",
            "excluded",
        ]
        .map(str::to_owned)));
    }
    let number = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for g in groups {
        if format == Format::Ndjson {
            out.push_str(&serde_json::to_string(g).unwrap_or_default());
            out.push('\n');
            continue;
        }
        out.push_str(&row([
            g.group.clone().unwrap_or_default(),
            g.count.to_string(),
            number(g.sum),
            number(g.mean),
            number(g.stddev),
            number(g.min),
            number(g.p25),
            number(g.p50),
            number(g.p75),
            number(g.max),
            g.excluded.to_string(),
        ]));
    }
    HttpResponse::Ok()
        .content_type(media_type(format))
        .body(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(row(["a".into(), "b,c".into()]), "a,\"b,c\"\r\n");
    }
}
