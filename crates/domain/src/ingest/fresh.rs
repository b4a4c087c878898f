//! Documents this process has just stored in the vault, kept in memory until a worker
//! of the same process takes them, so a small synchronous import is not read back
//! from the database it was written to a moment before (ADR 23). The vault stays the
//! only record: a document missing here (too large, evicted, received by another
//! instance, or processed again after a failure) is read from the vault.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::model::ImportId;
use crate::ports::{VaultError, VaultReader};

/// A bounded set of committed documents by import, oldest evicted first.
pub(super) struct FreshDocuments {
    /// The largest document kept, in bytes.
    max_document: usize,
    /// The most kept at once, in bytes.
    budget: usize,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    documents: VecDeque<(ImportId, Vec<Vec<u8>>, usize)>,
    bytes: usize,
}

impl FreshDocuments {
    /// Keeps documents up to `max_document` bytes, `budget` bytes in all (0: none).
    pub(super) fn new(max_document: usize, budget: usize) -> Self {
        Self {
            max_document: max_document.min(budget),
            budget,
            kept: Mutex::new(Kept::default()),
        }
    }

    /// Whether a document of `size` bytes so far can still be kept.
    pub(super) fn fits(&self, size: u64) -> bool {
        usize::try_from(size).is_ok_and(|size| size <= self.max_document)
    }

    /// Keeps the chunks of a document the vault has committed as `import`.
    pub(super) fn keep(&self, import: ImportId, chunks: Vec<Vec<u8>>) {
        let size: usize = chunks.iter().map(Vec::len).sum();
        if size > self.max_document {
            return;
        }
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while kept.bytes + size > self.budget {
            let Some((_, _, evicted)) = kept.documents.pop_front() else {
                break;
            };
            kept.bytes -= evicted;
        }
        kept.bytes += size;
        kept.documents.push_back((import, chunks, size));
    }

    /// The document of `import`, if kept; it is kept no longer.
    pub(super) fn take(&self, import: &ImportId) -> Option<Box<dyn VaultReader>> {
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let at = kept.documents.iter().position(|(id, _, _)| id == import)?;
        let (_, chunks, size) = kept.documents.remove(at)?;
        kept.bytes -= size;
        Some(Box::new(Chunks(chunks.into_iter())))
    }
}

/// A kept document, read chunk by chunk as from the vault.
struct Chunks(std::vec::IntoIter<Vec<u8>>);

#[async_trait::async_trait]
impl VaultReader for Chunks {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, VaultError> {
        Ok(self.0.next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> ImportId {
        ImportId::parse(format!("import{n}")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn read(fresh: &FreshDocuments, import: &ImportId) -> Option<Vec<u8>> {
        let mut reader = fresh.take(import)?;
        let mut all = Vec::new();
        while let Some(chunk) =
            futures_lite::future::block_on(reader.next_chunk()).unwrap_or_else(|e| panic!("{e}"))
        {
            all.extend(chunk);
        }
        Some(all)
    }

    #[test]
    fn a_kept_document_is_read_once_and_the_oldest_make_room() {
        let fresh = FreshDocuments::new(6, 10);
        fresh.keep(id(1), vec![b"ab".to_vec(), b"cd".to_vec()]);
        fresh.keep(id(2), vec![b"efgh".to_vec()]);
        fresh.keep(id(3), vec![b"ijklmnop".to_vec()]); // larger than a document may be
        assert!(fresh.fits(6) && !fresh.fits(7));
        assert_eq!(read(&fresh, &id(1)).as_deref(), Some(&b"abcd"[..]));
        assert_eq!(read(&fresh, &id(1)), None, "taken: read from the vault now");
        assert_eq!(read(&fresh, &id(3)), None, "never kept");
        fresh.keep(id(4), vec![b"qrstuv".to_vec()]);
        fresh.keep(id(5), vec![b"wx".to_vec()]); // 4 + 6 + 2 > 10: the oldest goes
        assert_eq!(read(&fresh, &id(2)), None, "evicted");
        assert_eq!(read(&fresh, &id(4)).as_deref(), Some(&b"qrstuv"[..]));
        assert_eq!(read(&fresh, &id(5)).as_deref(), Some(&b"wx"[..]));
    }
}
