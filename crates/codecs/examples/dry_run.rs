//! Dry run of a contract against a local document: decodes, maps and merges it as an
//! import into an empty dataset would, and prints the verdict, report, conflicts and
//! resulting records as JSON. Nothing is stored.
//!
//! ```text
//! cargo run -p intake-codecs --example dry_run -- CONTRACT.json DOCUMENT
//! ```

use std::fs::File;
use std::io::Write;
use std::process::ExitCode;

use intake_codecs::Codecs;
use intake_domain::Contract;
use intake_domain::merge::{MergeSession, Verdict};
use serde_json::json;

const USAGE: &str = "usage: dry_run CONTRACT.json DOCUMENT

Decodes DOCUMENT through the data contract CONTRACT.json and merges its records into an
empty dataset, printing the verdict, the import report, the conflicts and the resulting
records as JSON. Nothing is stored. Exit status: 0 when the document would be applied,
1 when it would be rejected, 2 for a bad contract or an unreadable file.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [contract, document] if !contract.starts_with('-') => run(contract, document),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(if args.iter().any(|a| a == "--help" || a == "-h") {
                0
            } else {
                2
            })
        }
    }
}

fn run(contract_path: &str, document_path: &str) -> ExitCode {
    let contract = match std::fs::read_to_string(contract_path)
        .map_err(|e| e.to_string())
        .and_then(|text| Contract::parse(&text).map_err(|e| e.to_string()))
    {
        Ok(contract) => contract,
        Err(e) => {
            eprintln!("{contract_path}: {e}");
            return ExitCode::from(2);
        }
    };
    let document = match File::open(document_path) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("{document_path}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut session = MergeSession::new(&contract);
    for item in Codecs::default().decode_reader(contract.format(), document) {
        session.push(item);
    }
    let result = session.finish();
    let records: Vec<_> = result
        .records
        .values()
        .map(|r| json!({"key": r.key.canonical(), "version": r.version.map(|v| v.get()), "contents": contract.contents(r)}))
        .collect();
    let out = json!({
        "verdict": if result.verdict == Verdict::Commit { "commit" } else { "reject" },
        "report": result.report,
        "conflicts": result.conflicts,
        "records": records,
    });
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string_pretty(&out).unwrap_or_default()
    );
    if result.verdict == Verdict::Commit {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
