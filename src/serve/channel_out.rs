//! Bytes to an SSH channel from code that writes synchronously (the console's backend): a write
//! collects, a flush queues what collected for a task that sends it in order.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use russh::ChannelId;
use russh::server::Handle;
use tokio::sync::mpsc;

/// Bytes queued for a client that is not reading them. A console frame is a few KiB; this many
/// queued means the client has stopped reading, and the session ends rather than buffer without
/// end.
const MOST_QUEUED: usize = 4 << 20;

#[derive(Clone)]
pub struct ChannelOut {
    queue: mpsc::UnboundedSender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    pending: Vec<u8>,
}

impl ChannelOut {
    /// A writer to `channel` of the session `handle` belongs to, and the task that sends: it ends
    /// when every clone of the writer is gone (after sending all they wrote) or the session is.
    /// Await it before closing the channel, so the last bytes are not overtaken by the close.
    pub fn open(handle: Handle, channel: ChannelId) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, mut out) = mpsc::unbounded_channel::<Vec<u8>>();
        let queued = Arc::new(AtomicUsize::new(0));
        let sent = queued.clone();
        let sender = tokio::spawn(async move {
            while let Some(bytes) = out.recv().await {
                let n = bytes.len();
                let gone = handle.data(channel, bytes).await.is_err();
                sent.fetch_sub(n, Ordering::SeqCst);
                if gone {
                    break;
                }
            }
        });
        let out = Self {
            queue,
            queued,
            pending: Vec::new(),
        };
        (out, sender)
    }
}

impl Write for ChannelOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.pending);
        if self.queued.load(Ordering::SeqCst) + bytes.len() > MOST_QUEUED {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "the client is not reading what the console sends",
            ));
        }
        self.queued.fetch_add(bytes.len(), Ordering::SeqCst);
        self.queue
            .send(bytes)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

/// One line on the channel's stderr (the client's terminal shows it after the console left).
pub async fn say(handle: &Handle, channel: ChannelId, line: &str) {
    let _ = handle
        .extended_data(channel, 1, format!("{line}\r\n").into_bytes())
        .await;
}
