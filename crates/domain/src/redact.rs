//! Secrets kept out of everything the service prints: the one place a URL is made fit
//! for a log line, a CLI message or an error (DESIGN §13).

/// What replaces a secret.
pub const REDACTED: &str = "***";

/// Query parameters whose value is a secret, by a part of their (lower-case) name.
const SECRET_PARAMETERS: [&str; 6] = ["password", "secret", "token", "key", "auth", "credential"];

/// `text` (a database or Redis URL) as it may be printed: the password of its
/// credentials and the value of any query parameter naming a secret
/// (`password=`, `sslpassword=`, `token=`, …) replaced by [`REDACTED`].
///
/// The URL is parsed as a URL, not cut at characters: something that does not parse
/// (a password with an unencoded `?` or `@`, say) is printed as its scheme alone,
/// since where its secret ends cannot be told. A URL with nothing secret is printed
/// exactly as given.
pub fn url(text: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(text) else {
        return unparsable(text);
    };
    // An unencoded `/`, `?` or `#` in a password can make the text another valid URL
    // (`postgres://u:8/Kx@h/db` is host `u`, port 8, path `/Kx@h/db`): when the text
    // reads as credentials with a password but the URL has none, it is not shown.
    let credentials = text
        .split_once("://")
        .and_then(|(_, rest)| rest.rfind('@').map(|at| &rest[..at]));
    if credentials.is_some_and(|c| c.contains(':')) && parsed.password().is_none() {
        return unparsable(text);
    }
    let mut changed = false;
    if parsed.password().is_some() {
        if parsed.set_password(Some(REDACTED)).is_err() {
            return unparsable(text);
        }
        changed = true;
    }
    let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    if pairs.iter().any(|(name, _)| is_secret(name)) {
        let kept: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(name, value)| {
                let value = if is_secret(&name) {
                    REDACTED.to_owned()
                } else {
                    value
                };
                (name, value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(kept);
        changed = true;
    }
    if changed {
        parsed.to_string()
    } else {
        text.to_owned()
    }
}

fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMETERS.iter().any(|s| name.contains(s))
}

fn unparsable(text: &str) -> String {
    let scheme = text
        .split_once("://")
        .map(|(scheme, _)| scheme)
        .filter(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        });
    match scheme {
        Some(scheme) => format!("{scheme}://{REDACTED} (not a valid URL; not shown)"),
        None => format!("{REDACTED} (not a valid URL; not shown)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_wherever_they_are() {
        let cases = [
            (
                "postgres://u:s3cret@h:5432/db",
                "postgres://u:***@h:5432/db",
            ),
            (
                "postgres://u@h/db?password=s3cret&sslmode=bogus",
                "postgres://u@h/db?password=***&sslmode=bogus",
            ),
            (
                "postgres://u@h/db?sslmode=require&sslpassword=s3cret",
                "postgres://u@h/db?sslmode=require&sslpassword=***",
            ),
            ("redis://:s3cret@cache:6379/2", "redis://:***@cache:6379/2"),
            ("redis://user:s3cret@cache", "redis://user:***@cache"),
            // Where the password ends cannot be told: only the scheme is shown.
            (
                "postgres://u:s3c?ret@h/db",
                "postgres://*** (not a valid URL; not shown)",
            ),
            (
                "postgres://u:s3c@ret@h:x/db",
                "postgres://*** (not a valid URL; not shown)",
            ),
            ("s3cret", "*** (not a valid URL; not shown)"),
        ];
        for (given, shown) in cases {
            assert_eq!(url(given), shown, "{given}");
            assert!(!url(given).contains("s3c"), "{given}");
        }
    }

    #[test]
    fn urls_without_secrets_are_printed_as_given() {
        for given in [
            "sqlite://./data/intake.db",
            "sqlite://./data/../x.db?mode=rwc",
            "postgres://postgres@127.0.0.1:5432/postgres",
            "redis://127.0.0.1:6379",
        ] {
            assert_eq!(url(given), given);
        }
    }
}
