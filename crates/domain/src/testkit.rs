//! Conformance suites (feature `testkit`): one set of assertions per port, written once,
//! that every adapter runs against itself (DESIGN §3), plus what they share: the
//! reference workloads of `examples/` and a harness trait.
//!
//! An adapter crate runs the storage suite with one line in a test file:
//!
//! ```ignore
//! intake_domain::storage_conformance!(fresh_store());
//! ```
//!
//! where `fresh_store()` is an async expression giving a [`Harness`] over a fresh
//! database. The macro expands to one `#[tokio::test]` per case (so the adapter crate
//! needs `tokio` with `macros` and `rt-multi-thread` as a dev-dependency), runs the
//! case, and cleans up even when it fails.

pub mod analytics;
pub mod bench;
pub mod cache;
pub mod callbacks;
mod clock;
pub mod deliveries;
pub mod ingest;
pub mod jobs;
pub mod limits;
pub mod sources;
pub mod storage;
mod support;
mod workloads;

use std::sync::Arc;

pub use clock::{Sleepless, SystemClock};
pub use workloads::{ACCOUNTS, CUSTOMERS, EXAM_RESULTS, WORKLOADS, Workload};

use crate::analytics::InProcessAnalytics;
use crate::ingest::IngestPorts;
use crate::ports::{
    Analytics, CallbackTimers, Clock, ContractStore, DatasetStore, DeliveryQueue, DocumentDecoder,
    ImportQueue, ImportVault, JobStore, PauseStore, RebuildStore, RecordStore, RollupStore,
    SourceStore, SubscriptionStore,
};

/// The storage ports of one adapter over one fresh database, and a decoder for the
/// suites that process documents.
#[derive(Clone)]
pub struct Stores {
    /// Datasets.
    pub datasets: Arc<dyn DatasetStore>,
    /// Contracts.
    pub contracts: Arc<dyn ContractStore>,
    /// The raw vault.
    pub vault: Arc<dyn ImportVault>,
    /// The import queue.
    pub queue: Arc<dyn ImportQueue>,
    /// Records.
    pub records: Arc<dyn RecordStore>,
    /// Wire formats (the `codecs` crate).
    pub decoder: Arc<dyn DocumentDecoder>,
    /// The analytics engine under test (by default the in-process one over `records`).
    pub analytics: Arc<dyn Analytics>,
    /// Subscriptions.
    pub subscriptions: Arc<dyn SubscriptionStore>,
    /// Deliveries.
    pub deliveries: Arc<dyn DeliveryQueue>,
    /// Callback timers.
    pub callbacks: Arc<dyn CallbackTimers>,
    /// Pull sources.
    pub sources: Arc<dyn SourceStore>,
    /// Paused kinds of work.
    pub pauses: Arc<dyn PauseStore>,
    /// Jobs.
    pub jobs: Arc<dyn JobStore>,
    /// History in commit order, and rollup series.
    pub rollups: Arc<dyn RollupStore>,
    /// Datasets cleared and their imports held for a reprocess.
    pub rebuilds: Arc<dyn RebuildStore>,
}

impl Stores {
    /// The ports of an adapter whose one store type implements them all.
    pub fn new<S>(store: Arc<S>, decoder: Arc<dyn DocumentDecoder>) -> Self
    where
        S: DatasetStore + ContractStore + ImportVault + ImportQueue + RecordStore + 'static,
        S: SubscriptionStore + DeliveryQueue + CallbackTimers + SourceStore + PauseStore,
        S: JobStore + RollupStore + RebuildStore,
    {
        Self {
            datasets: store.clone(),
            contracts: store.clone(),
            vault: store.clone(),
            queue: store.clone(),
            records: store.clone(),
            subscriptions: store.clone(),
            deliveries: store.clone(),
            callbacks: store.clone(),
            sources: store.clone(),
            pauses: store.clone(),
            jobs: store.clone(),
            rollups: store.clone(),
            rebuilds: store.clone(),
            decoder,
            analytics: Arc::new(InProcessAnalytics::new(store)),
        }
    }

    /// The ports the import service needs, with this clock.
    pub fn ingest_ports(&self, clock: Arc<dyn Clock>) -> IngestPorts {
        IngestPorts {
            datasets: self.datasets.clone(),
            contracts: self.contracts.clone(),
            vault: self.vault.clone(),
            queue: self.queue.clone(),
            records: self.records.clone(),
            decoder: self.decoder.clone(),
            clock,
        }
    }
}

/// A fresh database for one test case.
#[async_trait::async_trait]
pub trait Harness: Send + 'static {
    /// The ports over it.
    fn stores(&self) -> Stores;

    /// Drops the database (or schema, or directory).
    async fn cleanup(self);
}

/// Expands to one `#[tokio::test]` per storage and ingestion conformance case; see the
/// module documentation.
#[macro_export]
macro_rules! storage_conformance {
    ($harness:expr) => {
        $crate::storage_conformance!(@cases $harness;
            storage::datasets_are_created_read_and_listed,
            storage::a_dataset_name_is_taken_once_even_under_races,
            storage::contracts_are_numbered_without_gaps_under_concurrent_publishers,
            storage::the_vault_keeps_large_documents_byte_for_byte,
            storage::the_vault_keeps_nothing_from_a_dropped_writer,
            storage::the_vault_answers_the_first_import_for_a_repeated_body_or_key,
            storage::the_vault_lists_imports_newest_first,
            storage::the_queue_hands_out_the_oldest_import_first,
            storage::concurrent_claimers_never_share_an_import,
            storage::expired_leases_are_reclaimed_and_stale_holders_refused,
            storage::a_released_import_is_claimed_again,
            storage::a_dropped_writer_rolls_everything_back,
            storage::a_writer_sees_its_own_batches_and_commits_them_at_once,
            storage::a_lost_lease_stops_the_writer,
            storage::a_rejected_import_keeps_nothing_and_is_marked_failed,
            storage::records_keep_large_values,
            storage::claims_count_attempts_and_a_release_gives_one_back,
            storage::expired_holders_give_their_imports_back_at_once,
            storage::a_pause_is_kept_for_every_instance_until_resumed,
            jobs::jobs_are_claimed_once_and_resumed_from_their_latest_checkpoint,
            jobs::operators_pause_resume_cancel_and_restart_jobs,
            jobs::a_rollup_keeps_each_groups_aggregate_after_every_import,
            jobs::a_rebuild_holds_a_datasets_imports_for_its_job_alone,
            jobs::a_reprocess_rebuilds_a_dataset_as_if_its_imports_arrived_under_another_contract,
            deliveries::subscriptions_are_created_listed_read_and_deleted,
            deliveries::events_go_only_to_the_subscriptions_that_want_them,
            deliveries::deliveries_are_claimed_once_retried_and_end_delivered_or_dead,
            deliveries::a_deleted_subscription_takes_its_deliveries_with_it,
            deliveries::a_paused_subscription_keeps_its_deliveries_until_resumed,
            deliveries::deliveries_are_listed_and_replayed,
            deliveries::a_processed_import_wakes_the_delivery_workers,
            deliveries::claims_take_batches_within_each_subscriptions_room,
            deliveries::delivered_events_are_pruned_after_the_retention,
            deliveries::failing_subscriptions_are_disabled,
            callbacks::due_timers_fire_once_with_the_record_at_their_version,
            callbacks::concurrent_firers_never_fire_a_timer_twice,
            callbacks::timers_are_listed_with_their_outcome_and_settled_ones_pruned,
            sources::sources_are_created_listed_changed_and_deleted,
            sources::a_page_and_its_cursor_are_saved_together,
            sources::concurrent_claimers_never_share_a_source,
            sources::failures_are_counted_until_a_page_clears_them,
            sources::a_run_saves_every_page_once_and_resumes_where_it_failed,
            sources::a_source_whose_records_fail_the_contract_is_degraded,
            sources::a_source_whose_attempts_are_spent_is_degraded_not_given_up,
            sources::a_backfill_pulls_every_page_and_resumes_from_its_checkpoint,
            ingest::workloads_give_the_same_result_as_a_dry_run,
            ingest::reprocessing_applies_nothing_twice,
            ingest::a_csv_header_without_required_columns_fails_with_one_error,
            ingest::a_waiter_is_woken_when_its_import_is_processed,
            ingest::a_repeated_body_or_idempotency_key_is_one_import,
            ingest::an_invalid_document_is_rejected_whole,
            ingest::records_are_listed_by_dimension_and_page,
            ingest::the_total_counts_each_key_once,
            ingest::deep_offsets_give_the_keys_a_plain_offset_gives,
            ingest::only_finished_imports_are_reprocessed,
            ingest::workers_apply_every_import_exactly_once,
            ingest::shutdown_releases_the_import_in_progress,
            ingest::an_import_that_keeps_failing_is_given_up,
            ingest::a_failed_attempt_is_retried_after_a_back_off_not_a_lease,
            ingest::a_restart_takes_back_what_its_dead_predecessor_held,
            ingest::a_store_error_mid_import_rolls_everything_back,
            ingest::a_nul_character_invalidates_its_record_not_the_import,
            ingest::a_deleted_dataset_keeps_its_documents_until_purged,
            ingest::a_deleted_record_leaves_the_latest_state_and_stays_in_history,
            callbacks::a_deleted_record_never_calls_back,
            jobs::a_reprocess_keeps_deleted_records_deleted_and_rollups_see_them_go,
            analytics::aggregates_match_the_reference_and_known_values,
            analytics::an_undefined_ratio_is_excluded_and_counted,
            analytics::many_values_agree_to_1e_9,
            analytics::top_k_gives_the_known_accounts_per_subtype,
            analytics::filters_on_other_dimensions_agree,
            analytics::a_changed_record_leaves_its_old_group,
        );
    };
    (@cases $harness:expr; $($suite:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = $harness.await;
                let stores = $crate::testkit::Harness::stores(&harness);
                let run = tokio::spawn($crate::testkit::$suite::$case(stores));
                let outcome = run.await;
                $crate::testkit::Harness::cleanup(harness).await;
                if let Err(e) = outcome {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        )*
    };
}

/// Expands to one `#[tokio::test]` per case of the cache suite ([`cache`]).
///
/// `$make` is an async expression giving a fresh, working `Arc<dyn Cache>`; it is
/// evaluated once per case. Cleaning up after a case is the cache's own business (for
/// a shared server, for example, a wrapper that deletes its key prefix when dropped):
///
/// ```ignore
/// intake_domain::cache_conformance!(async {
///     std::sync::Arc::new(MemoryCache::new(64 << 20)) as std::sync::Arc<dyn Cache>
/// });
/// ```
#[macro_export]
macro_rules! cache_conformance {
    ($make:expr) => {
        $crate::cache_conformance!(@cases $make;
            a_put_value_is_read_back,
            a_missing_key_is_a_miss,
            a_put_replaces_the_value,
            keys_differing_in_one_part_are_distinct,
            large_values_round_trip,
            concurrent_puts_and_gets_do_not_corrupt,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let cache: ::std::sync::Arc<dyn $crate::ports::Cache> = $make.await;
                $crate::testkit::cache::$case(cache).await;
            }
        )*
    };
}

/// Expands to one `#[tokio::test]` per case of the rate limiter suite ([`limits`]).
///
/// `$make` is an async expression giving a fresh `Arc<dyn RateLimiter>` (no bucket
/// known); it is evaluated once per case.
#[macro_export]
macro_rules! rate_limiter_conformance {
    ($make:expr) => {
        $crate::rate_limiter_conformance!(@cases $make;
            a_burst_is_allowed_then_refused,
            keys_have_buckets_of_their_own,
            tokens_come_back_with_time,
            racing_requests_never_overdraw,
            a_new_shape_applies_to_an_existing_bucket,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let limiter: ::std::sync::Arc<dyn $crate::ports::RateLimiter> = $make.await;
                $crate::testkit::limits::$case(limiter).await;
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Contract, DatasetName};

    #[test]
    fn every_workload_has_a_valid_name_and_contract() {
        for w in WORKLOADS {
            assert!(DatasetName::parse(w.dataset).is_ok(), "{}", w.dataset);
            assert!(Contract::parse(w.contract).is_ok(), "{}", w.dataset);
            assert!(!w.documents.is_empty());
        }
    }
}
