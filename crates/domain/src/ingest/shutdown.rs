//! A shutdown signal for workers that needs no async runtime.

/// Tells workers to stop. Dropping it also does.
#[derive(Debug)]
pub struct ShutdownTrigger(async_channel::Sender<()>);

/// What workers watch; cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown(async_channel::Receiver<()>);

/// A new trigger and the signal it controls.
pub fn shutdown_channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = async_channel::bounded(1);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Signals every holder of the [`Shutdown`].
    pub fn trigger(&self) {
        self.0.close();
    }
}

impl Shutdown {
    /// Whether shutdown was signalled.
    pub fn is_triggered(&self) -> bool {
        self.0.is_closed()
    }

    /// Completes once shutdown is signalled.
    pub async fn wait(&self) {
        // Nothing is ever sent: `recv` returns when the channel closes.
        let _ = self.0.recv().await;
    }
}
