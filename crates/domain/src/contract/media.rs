//! Which media types a document of each format may arrive as.

use super::DocumentFormat;

/// `application/octet-stream`: "the contract knows the format", accepted for any.
const ANY: &str = "application/octet-stream";

impl DocumentFormat {
    /// The media type a document of this format is sent and served as.
    pub fn media_type(&self) -> &'static str {
        match self {
            Self::Xml { .. } => "application/xml",
            Self::Csv { .. } => "text/csv",
            Self::Json { .. } => "application/json",
            Self::Ndjson => "application/x-ndjson",
        }
    }

    /// Whether a document sent as `media_type` (a `Content-Type` value, parameters
    /// allowed) can be read in this format: the format's own types, structured
    /// suffixes (`application/vnd.x+json`), vendor variants (`text/xml+markr`), and
    /// `application/octet-stream` for any format.
    pub fn accepts(&self, media_type: &str) -> bool {
        let essence = media_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let Some((kind, subtype)) = essence.split_once('/') else {
            return false;
        };
        if essence == ANY {
            return true;
        }
        let named = |name: &str| {
            subtype == name
                || subtype.ends_with(&format!("+{name}"))
                || subtype.starts_with(&format!("{name}+"))
        };
        match self {
            Self::Xml { .. } => matches!(kind, "application" | "text") && named("xml"),
            Self::Csv { .. } => matches!(kind, "application" | "text") && named("csv"),
            Self::Json { .. } => matches!(kind, "application" | "text") && named("json"),
            Self::Ndjson => {
                kind == "application"
                    && ["x-ndjson", "ndjson", "jsonl", "x-jsonlines", "jsonlines"]
                        .contains(&subtype)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_takes_its_own_media_types_and_octet_stream() {
        let xml = DocumentFormat::Xml {
            records: vec![],
            members: None,
        };
        let csv = DocumentFormat::Csv {
            delimiter: b',',
            quote: b'"',
        };
        let json = DocumentFormat::Json { records: vec![] };
        let table: [(&DocumentFormat, &str, bool); 12] = [
            (&xml, "text/xml+markr", true),
            (&xml, "application/xml; charset=utf-8", true),
            (&xml, "application/atom+xml", true),
            (&xml, "application/json", false),
            (&csv, "text/csv", true),
            (&csv, "application/x-www-form-urlencoded", false),
            (&json, "application/json", true),
            (&json, "application/problem+json", true),
            (&json, "text/csv", false),
            (&DocumentFormat::Ndjson, "application/x-ndjson", true),
            (&DocumentFormat::Ndjson, "application/json", false),
            (&csv, "APPLICATION/OCTET-STREAM", true),
        ];
        for (format, media_type, accepted) in table {
            assert_eq!(
                format.accepts(media_type),
                accepted,
                "{format:?} {media_type}"
            );
        }
        assert!(!csv.accepts("csv"), "no slash, no media type");
    }
}
