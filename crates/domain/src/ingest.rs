//! Ingestion (DESIGN §6): documents are received into the raw vault, claimed by a
//! worker under a lease, decoded, mapped and merged in batches, and committed with
//! their history, conflicts, events and callback timers in one unit of work.
//!
//! [`ImportService`] holds the use cases, generic over the ports; [`ImportWorker`] is
//! the runtime of [`crate::work`] over [`ImportWork`], which a process runs N times to
//! drain the queue. Decoding and merging run on a
//! blocking thread while the store's writes run on the async runtime; bounded channels
//! between them keep memory flat whatever the document's size.

mod deletions;
mod events;
mod fresh;
mod pipeline;
mod progress;
mod service;
mod shutdown;
mod worker;

pub use deletions::MEDIA_TYPE as DELETIONS_MEDIA_TYPE;
pub use events::{change_event, change_kind, import_event};
pub use progress::ImportProgress;
pub(crate) use service::hex;
pub use service::{
    DryRun, ImportObserver, ImportService, IngestPorts, IngestSettings, LookupError, ProcessError,
    Processed, ReceiveError, Received, ReprocessError, worker_name,
};
pub use shutdown::{Shutdown, ShutdownTrigger, shutdown_channel};
pub use worker::{ImportWork, ImportWorker};
