//! One import's processing pipeline: vault chunks flow to a blocking thread that
//! decodes, maps and merges; the batches it produces flow back to the async side,
//! which loads state and writes through the store's unit of work. Every channel is
//! bounded, so a slow store slows decoding instead of filling memory.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, Sender, bounded};
use chrono::{DateTime, Utc};
use futures_lite::future;

use super::progress::Tally;
use super::service::{IngestSettings, ProcessError};
use crate::contract::Contract;
use crate::mapping::MappedRecord;
use crate::merge::{Batch, MergeSession, SessionResult, Verdict};
use crate::model::{ImportReport, Record, RecordKey};
use crate::ports::{Clock, DocumentDecoder, IdentityMap, ImportWriter, StoreError, VaultReader};

/// What the decoding thread asks of the async side, in order.
enum Step {
    /// The stored state of these keys and identity keys, before merging a batch.
    Load(Vec<RecordKey>, Vec<String>),
    /// Write a merged batch.
    Apply(Batch),
    /// The document is done.
    Done(Verdict, ImportReport),
}

type State = (HashMap<RecordKey, Record>, IdentityMap);

/// The other side of a channel went away (an error ended the pipeline).
struct Stopped;

/// Renews the lease through the writer when due.
pub(super) struct Renewal {
    clock: Arc<dyn Clock>,
    lease: Duration,
    every: chrono::Duration,
    next: DateTime<Utc>,
}

impl Renewal {
    pub(super) fn new(clock: Arc<dyn Clock>, settings: &IngestSettings) -> Self {
        let every =
            chrono::Duration::from_std(settings.renew_every).unwrap_or(chrono::Duration::MAX);
        let next = clock.now() + every;
        Self {
            clock,
            lease: settings.lease,
            every,
            next,
        }
    }

    async fn maybe_renew(&mut self, writer: &mut dyn ImportWriter) -> Result<(), StoreError> {
        let now = self.clock.now();
        if now >= self.next {
            writer.renew(self.lease).await?;
            tracing::debug!("lease renewed");
            self.next = now + self.every;
        }
        Ok(())
    }
}

/// How merged records are written.
pub(super) struct Batching {
    /// Records merged and written per batch.
    pub(super) size: usize,
    /// What every callback delay is multiplied by.
    pub(super) callback_scale: f64,
}

impl Batching {
    fn scale(&self, batch: &mut Batch) {
        if self.callback_scale == 1.0 {
            return;
        }
        for change in &mut batch.changes {
            if let Some(after) = change.callback_after {
                let scaled = after.as_secs_f64() * self.callback_scale;
                change.callback_after =
                    Some(Duration::try_from_secs_f64(scaled).unwrap_or(Duration::ZERO));
            }
        }
    }
}

/// Runs the pipeline to its verdict; the caller finishes the writer.
pub(super) async fn run(
    mut reader: Box<dyn VaultReader>,
    decoder: Arc<dyn DocumentDecoder>,
    contract: Contract,
    writer: &mut dyn ImportWriter,
    mut renewal: Renewal,
    batching: Batching,
    tally: Arc<Tally>,
) -> Result<(Verdict, ImportReport), ProcessError> {
    let batch_size = batching.size;
    let (chunk_tx, chunk_rx) = bounded::<Vec<u8>>(8);
    let (step_tx, step_rx) = bounded::<Step>(2);
    let (state_tx, state_rx) = bounded::<State>(1);
    let span = tracing::Span::current();
    let input = ChannelReader::new(chunk_rx);
    let counted = tally.clone();
    std::thread::Builder::new()
        .name("intake-decode".into())
        .spawn(move || {
            let _entered = span.enter();
            let _ = decode_and_merge(
                &*decoder, &contract, input, &step_tx, &state_rx, batch_size, &counted,
            );
        })
        .map_err(|e| anyhow::Error::new(e).context("starting the decoding thread"))?;

    let feed = async move {
        while let Some(chunk) = reader.next_chunk().await.map_err(anyhow::Error::new)? {
            tally.read(chunk.len());
            if chunk_tx.send(chunk).await.is_err() {
                break; // the decoder stopped reading (a fatal error, or the end)
            }
        }
        Ok::<_, ProcessError>(())
    };
    let serve = async move {
        let mut outcome = None;
        while let Ok(step) = step_rx.recv().await {
            match step {
                Step::Load(keys, identities) => {
                    let state = writer.load(&keys, &identities).await.map_err(store)?;
                    if state_tx.send(state).await.is_err() {
                        break;
                    }
                }
                Step::Apply(mut batch) => {
                    batching.scale(&mut batch);
                    writer.apply(&batch).await.map_err(store)?;
                }
                Step::Done(verdict, report) => outcome = Some((verdict, report)),
            }
            renewal.maybe_renew(writer).await.map_err(store)?;
        }
        outcome.ok_or_else(|| anyhow::anyhow!("the decoding thread stopped unexpectedly").into())
    };
    let ((), outcome) = future::try_zip(feed, serve).await?;
    Ok(outcome)
}

/// Decodes, maps and merges a stored document into an empty state on a blocking
/// thread, writing nothing: a dry run. Memory grows with the document's distinct keys.
pub(super) async fn dry_run(
    mut reader: Box<dyn VaultReader>,
    decoder: Arc<dyn DocumentDecoder>,
    contract: Contract,
) -> anyhow::Result<SessionResult> {
    let (chunk_tx, chunk_rx) = bounded::<Vec<u8>>(8);
    let (done_tx, done_rx) = bounded::<SessionResult>(1);
    let span = tracing::Span::current();
    let input = ChannelReader::new(chunk_rx);
    std::thread::Builder::new()
        .name("intake-dry-run".into())
        .spawn(move || {
            let _entered = span.enter();
            let mut session = MergeSession::new(&contract);
            for item in decoder.decode(contract.format(), Box::new(input)) {
                session.push(item);
                if session.is_over() {
                    break;
                }
            }
            let _ = done_tx.send_blocking(session.finish());
        })
        .map_err(|e| anyhow::Error::new(e).context("starting the dry-run thread"))?;
    while let Some(chunk) = reader.next_chunk().await? {
        if chunk_tx.send(chunk).await.is_err() {
            break; // the decoder stopped reading (a fatal error)
        }
    }
    drop(chunk_tx);
    done_rx
        .recv()
        .await
        .map_err(|_| anyhow::anyhow!("the dry-run thread stopped unexpectedly"))
}

pub(super) fn store(e: StoreError) -> ProcessError {
    match e {
        StoreError::LeaseLost => ProcessError::LeaseLost,
        e => ProcessError::Unexpected(anyhow::Error::new(e)),
    }
}

/// The blocking side: decode, map, and merge batch by batch against loaded state.
fn decode_and_merge(
    decoder: &dyn DocumentDecoder,
    contract: &Contract,
    input: ChannelReader,
    steps: &Sender<Step>,
    states: &Receiver<State>,
    batch_size: usize,
    tally: &Tally,
) -> Result<(), Stopped> {
    let mut session = MergeSession::new(contract);
    let mut pending = Vec::with_capacity(batch_size);
    for item in decoder.decode(contract.format(), Box::new(input)) {
        tally.record();
        if let Some(mapped) = session.accept(item) {
            pending.push(mapped);
        }
        if session.is_over() {
            break;
        }
        if pending.len() >= batch_size {
            flush(&mut session, &mut pending, steps, states)?;
        }
    }
    flush(&mut session, &mut pending, steps, states)?;
    let result = session.finish();
    let done = Step::Done(result.verdict, result.report);
    steps.send_blocking(done).map_err(|_| Stopped)
}

fn flush(
    session: &mut MergeSession<'_>,
    pending: &mut Vec<MappedRecord>,
    steps: &Sender<Step>,
    states: &Receiver<State>,
) -> Result<(), Stopped> {
    if session.is_rejected() {
        pending.clear(); // nothing will be applied; the rest is only validated
    }
    if pending.is_empty() {
        return Ok(());
    }
    let keys = pending.iter().map(|m| m.record.key.clone()).collect();
    let identities = pending
        .iter()
        .filter_map(|m| Some(m.identity.as_ref()?.key.clone()))
        .collect();
    steps
        .send_blocking(Step::Load(keys, identities))
        .map_err(|_| Stopped)?;
    let (records, identities) = states.recv_blocking().map_err(|_| Stopped)?;
    session.add_state(records, identities);
    pending.drain(..).for_each(|m| session.merge(m));
    let batch = session.take_batch();
    if batch.changes.is_empty() && batch.conflicts.is_empty() && batch.identities.is_empty() {
        return Ok(());
    }
    steps.send_blocking(Step::Apply(batch)).map_err(|_| Stopped)
}

/// Reads the chunks the async side sends; the end of the channel is the end of input.
struct ChannelReader {
    chunks: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    fn new(chunks: Receiver<Vec<u8>>) -> Self {
        Self {
            chunks,
            chunk: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.chunk.len() {
            match self.chunks.recv_blocking() {
                Ok(chunk) => (self.chunk, self.pos) = (chunk, 0),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
