//! Rows to domain types. Everything read back is validated as new input would be.

use anyhow::Context as _;
use intake_domain::ports::{CatalogError, Dataset, ImportSummary, NewImport, PublishedContract};
use intake_domain::{Contract, ContractVersion, DatasetName, ImportId, ImportStatus, Revision};
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;

use crate::parse_ts;

pub(crate) const IMPORT_COLUMNS: &str = "id, dataset, contract, content_type, source, \
    idempotency_key, size, sha256, received_at, status, report";

fn version(v: i64) -> anyhow::Result<ContractVersion> {
    let v = u32::try_from(v).context("contract version out of range")?;
    ContractVersion::try_new(v).context("bad contract version")
}

fn dataset_name(text: String) -> anyhow::Result<DatasetName> {
    DatasetName::parse(text).context("bad dataset name")
}

pub(crate) fn dataset_row(row: &SqliteRow) -> anyhow::Result<Dataset> {
    let revision: i64 = row.try_get("revision")?;
    Ok(Dataset {
        name: dataset_name(row.try_get("name")?)?,
        current_contract: version(row.try_get("current_contract")?)?,
        revision: Revision::new(u64::try_from(revision).context("negative revision")?),
        created_at: parse_ts(row.try_get("created_at")?)?,
    })
}

pub(crate) fn contract_row(row: &SqliteRow) -> Result<PublishedContract, CatalogError> {
    let body: String = row.try_get("body").map_err(anyhow::Error::new)?;
    let contract = Contract::parse(&body).map_err(|e| CatalogError::Corrupt(e.to_string()))?;
    let read = || -> anyhow::Result<PublishedContract> {
        Ok(PublishedContract {
            dataset: dataset_name(row.try_get("dataset")?)?,
            version: version(row.try_get("version")?)?,
            contract: contract.clone(),
            published_at: parse_ts(row.try_get("published_at")?)?,
        })
    };
    Ok(read()?)
}

fn status(text: &str) -> anyhow::Result<ImportStatus> {
    ImportStatus::parse(text).with_context(|| format!("bad import status {text:?}"))
}

pub(crate) fn import_row(row: &SqliteRow) -> anyhow::Result<ImportSummary> {
    let report: Option<String> = row.try_get("report")?;
    let size: i64 = row.try_get("size")?;
    Ok(ImportSummary {
        id: ImportId::parse(row.try_get::<String, _>("id")?)?,
        import: NewImport {
            dataset: dataset_name(row.try_get("dataset")?)?,
            contract: version(row.try_get("contract")?)?,
            content_type: row.try_get("content_type")?,
            source: row.try_get("source")?,
            idempotency_key: row.try_get("idempotency_key")?,
        },
        size: u64::try_from(size).context("negative size")?,
        sha256: row.try_get("sha256")?,
        received_at: parse_ts(row.try_get("received_at")?)?,
        status: status(row.try_get("status")?)?,
        report: report
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .context("bad stored report")?,
    })
}

/// Reads a JSON column into a domain type.
/// A record stored in the compact form (or the serde form written before it).
pub(crate) fn record(row: &SqliteRow, column: &str) -> anyhow::Result<intake_domain::Record> {
    let text: String = row.try_get(column)?;
    intake_domain::Record::from_stored(&text).with_context(|| format!("bad stored {column}"))
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(
    row: &SqliteRow,
    column: &str,
) -> anyhow::Result<T> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).with_context(|| format!("bad stored {column}"))
}
