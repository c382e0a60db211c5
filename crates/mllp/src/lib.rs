//! MLLP, the Minimal Lower Layer Protocol that carries HL7 v2 over TCP (HL7 v2.5.1 Implementation
//! Guide: Transport Specification, MLLP release 2): each message is framed as
//! `<VT> message <FS><CR>` (0x0B … 0x1C 0x0D), and every message is answered with an
//! acknowledgement in the same framing.
//!
//! [`Frames`] finds frames in bytes as they arrive, however TCP splits them (hard case B07: a
//! trailer split across reads, several frames in one read, bytes between frames discarded).
//! [`serve`] accepts connections and gives each frame to a [`Handler`], one at a time per
//! connection, so that a sender's messages are applied in the order it sent them; the answer is
//! written only when the handler returns it (which, for Rapport, is after the durable commit).
//! Frames over a size limit close the connection, and so does a connection idle for too long;
//! neither disturbs other connections.

#![forbid(unsafe_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Start of block.
pub const VT: u8 = 0x0B;
/// End of block (followed by CR).
pub const FS: u8 = 0x1C;
pub const CR: u8 = 0x0D;

/// Limits of a listener.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest frame accepted; a sender going over it is disconnected (hard case B07 asks
    /// for a cap, e.g. 16 MiB; a 5 MB ORU with an embedded PDF fits).
    pub max_frame_bytes: usize,
    /// A connection that sends nothing for this long is closed (an incomplete frame is dropped,
    /// never acknowledged).
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 16 * 1024 * 1024,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// Frames found in a byte stream.
#[derive(Debug, Default)]
pub struct Frames {
    buffer: Vec<u8>,
    /// Where the current frame's content starts in `buffer` (after its VT), if one started.
    start: Option<usize>,
    /// How far `buffer` has been searched for the trailer.
    scanned: usize,
}

/// Why a stream of frames cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A frame grew past the limit before its trailer came.
    TooLarge { limit: usize },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge { limit } => {
                write!(f, "a frame is larger than the limit of {limit} bytes")
            }
        }
    }
}

impl Frames {
    /// Add bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete frame's content, in order; `Ok(None)` until one is complete. Bytes
    /// before a `<VT>` are discarded.
    pub fn next_frame(&mut self, limit: usize) -> Result<Option<Vec<u8>>, FrameError> {
        let start = match self.start {
            Some(s) => s,
            None => match self.buffer.iter().position(|&b| b == VT) {
                Some(vt) => {
                    self.buffer.drain(..vt);
                    self.start = Some(1);
                    self.scanned = 1;
                    1
                }
                None => {
                    // Noise between frames (CRLF, garbage): nothing to keep.
                    self.buffer.clear();
                    return Ok(None);
                }
            },
        };
        // A <VT> before the trailer starts another frame: the open one was abandoned by its
        // sender (never answered, so it will be sent again) and must not swallow the next one.
        let from_vt = self.scanned.max(start);
        if let Some(vt) = self.buffer[from_vt..].iter().position(|&b| b == VT) {
            let at = from_vt + vt;
            let trailer_before = self.buffer[start..at]
                .windows(2)
                .any(|w| w[0] == FS && w[1] == CR);
            if !trailer_before {
                tracing::warn!("mllp: a frame was abandoned before its end; it was dropped");
                self.buffer.drain(..at);
                self.start = Some(1);
                self.scanned = 1;
                return self.next_frame(limit);
            }
        }
        // The trailer is FS CR; search from just before where the last search stopped, in
        // case FS arrived at the end of the previous read and CR at the start of this one.
        let from = self.scanned.saturating_sub(1).max(start);
        match self.buffer[from..]
            .windows(2)
            .position(|w| w[0] == FS && w[1] == CR)
        {
            Some(at) => {
                let end = from + at;
                let frame = self.buffer[start..end].to_vec();
                self.buffer.drain(..end + 2);
                self.start = None;
                self.scanned = 0;
                Ok(Some(frame))
            }
            None => {
                self.scanned = self.buffer.len();
                if self.buffer.len() - start > limit {
                    return Err(FrameError::TooLarge { limit });
                }
                Ok(None)
            }
        }
    }

    /// Whether part of a frame is waiting for more bytes.
    pub fn has_partial(&self) -> bool {
        self.start.is_some()
    }
}

/// Wrap `message` in MLLP framing.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(VT);
    out.extend_from_slice(message);
    out.push(FS);
    out.push(CR);
    out
}

/// A future of the answer to one message: the messages to send back, each framed (none, one, or
/// in HL7's enhanced mode an accept and an application acknowledgement).
pub type Answer = Pin<Box<dyn Future<Output = Vec<Vec<u8>>> + Send>>;

/// What answers each message: given its bytes and the peer's address, the acknowledgements.
pub type Handler = Arc<dyn Fn(Vec<u8>, SocketAddr) -> Answer + Send + Sync>;

/// Accept connections on `listener` until `shutdown` resolves; each connection runs on its own
/// task. Connections in progress finish their current message.
pub async fn serve(
    listener: TcpListener,
    limits: Limits,
    handler: Handler,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let (limits, handler) = (limits.clone(), handler.clone());
                    tokio::spawn(async move {
                        connection(stream, peer, limits, handler).await;
                    });
                }
                Err(e) => {
                    tracing::warn!("mllp: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// One connection: frames in, answers out, in order.
async fn connection(mut stream: TcpStream, peer: SocketAddr, limits: Limits, handler: Handler) {
    let _ = stream.set_nodelay(true);
    let mut frames = Frames::default();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // Every complete frame first, in order, each answered before the next is handled.
        loop {
            match frames.next_frame(limits.max_frame_bytes) {
                Ok(Some(message)) => {
                    let answers = handler(message, peer).await;
                    let mut out = Vec::new();
                    for answer in &answers {
                        out.extend(frame(answer));
                    }
                    if !out.is_empty() && stream.write_all(&out).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("mllp: closing a connection from {peer}: {e}");
                    return;
                }
            }
        }
        let read = tokio::time::timeout(limits.idle_timeout, stream.read(&mut chunk)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => {
                if frames.has_partial() {
                    // Never acknowledged: the sender will send it again.
                    tracing::warn!("mllp: a connection from {peer} closed inside a frame; the partial frame was dropped");
                }
                return;
            }
            Ok(Ok(n)) => frames.push(&chunk[..n]),
            Err(_) => {
                tracing::info!(
                    "mllp: closing a connection from {peer} idle for {:?}",
                    limits.idle_timeout
                );
                return;
            }
        }
    }
}
