//! Rows for `COPY … FROM STDIN` in PostgreSQL's text format: fields separated by tabs,
//! rows by newlines, with backslash, tab, newline and carriage return escaped.

use sqlx::PgConnection;

/// A buffer of rows for one `COPY`.
#[derive(Default)]
pub(crate) struct CopyRows {
    bytes: Vec<u8>,
    rows: u64,
}

impl CopyRows {
    /// Appends one row of text fields.
    pub(crate) fn row(&mut self, fields: &[&str]) {
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                self.bytes.push(b'\t');
            }
            escape(&mut self.bytes, field);
        }
        self.bytes.push(b'\n');
        self.rows += 1;
    }

    /// Sends the rows with `statement` (`COPY table (columns) FROM STDIN`).
    pub(crate) async fn send(
        self,
        conn: &mut PgConnection,
        statement: &str,
    ) -> Result<(), sqlx::Error> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut copy = conn.copy_in_raw(statement).await?;
        copy.send(self.bytes).await?;
        copy.finish().await?;
        Ok(())
    }
}

fn escape(out: &mut Vec<u8>, field: &str) {
    let bytes = field.as_bytes();
    if !bytes
        .iter()
        .any(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r'))
    {
        out.extend_from_slice(bytes);
        return;
    }
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CopyRows;

    #[test]
    fn special_characters_are_escaped_and_rows_end_with_newlines() {
        let mut rows = CopyRows::default();
        rows.row(&["a\tb", "{\"q\":\"\\\"\"}", "line\nbreak\r"]);
        rows.row(&["plain"]);
        let text = String::from_utf8(rows.bytes).unwrap();
        assert_eq!(text, "a\\tb\t{\"q\":\"\\\\\"\"}\tline\\nbreak\\r\nplain\n");
        assert_eq!(rows.rows, 2);
    }
}
