//! One framed peer connection: a glommio TCP stream with a bounded read buffer and the
//! protocol's frame decoder in peer role.
//!
//! Invariants: the read buffer never grows past one maximal peer frame plus one read
//! (`FrameDecoder::bytes_needed` is bounded by `MAX_PEER_FRAME_LEN`); every frame written
//! is encoded whole before the first byte goes out, so a failed encode never leaves half
//! a frame on the wire. A connection that returned any error is broken and must be
//! dropped by its owner (a partly written frame cannot be resumed). `recv` alone is
//! cancel-safe: a dropped `recv` leaves any partial frame buffered, so a caller may race it
//! against other work and call it again. No timeouts here: callers bound every await.

use std::net::SocketAddr;

use bytes::BytesMut;
use futures::AsyncReadExt;
use futures::AsyncWriteExt;
use glommio::net::TcpStream;
use shoal_proto::DecodeError;
use shoal_proto::Disposition;
use shoal_proto::EncodeError;
use shoal_proto::Frame;
use shoal_proto::FrameDecoder;
use shoal_proto::PeerFrame;
use shoal_proto::PeerMessage;
use shoal_proto::Role;
use shoal_proto::encode_error;
use shoal_proto::encode_peer;

/// Bytes asked of the socket per read when the decoder needs less (a header, a small
/// frame): amortizes syscalls over many small frames.
const READ_CHUNK: usize = 64 * 1024;

/// Why a peer connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The socket failed.
    #[error("peer socket error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection.
    #[error("peer closed the connection")]
    Closed,
    /// The peer sent bytes that are not a valid peer frame.
    #[error("invalid peer frame: {0}")]
    Decode(#[from] DecodeError),
    /// A message could not be encoded (for example larger than `MAX_PEER_FRAME_LEN`).
    #[error("cannot encode peer frame: {0}")]
    Encode(#[from] EncodeError),
    /// The peer answered with the version-independent client `Error` frame (it does not
    /// speak our protocol version).
    #[error("peer refused the connection: {0}")]
    Refused(String),
}

/// Cuts a read buffer back to `len` when dropped (also when a read is cancelled).
struct Truncate<'a> {
    buf: &'a mut BytesMut,
    len: usize,
}

impl Drop for Truncate<'_> {
    fn drop(&mut self) {
        self.buf.truncate(self.len);
    }
}

/// A framed peer connection.
pub(crate) struct PeerConn {
    stream: TcpStream,
    peer: Option<SocketAddr>,
    read_buf: BytesMut,
    write_buf: BytesMut,
    decoder: FrameDecoder,
}

impl std::fmt::Debug for PeerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerConn")
            .field("peer", &self.peer)
            .field("buffered", &self.read_buf.len())
            .finish()
    }
}

impl PeerConn {
    pub(crate) fn new(stream: TcpStream) -> PeerConn {
        // Raft RPCs are latency-bound request/response exchanges.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY on a peer connection: {e}");
        }
        let peer = stream.peer_addr().ok();
        PeerConn {
            stream,
            peer,
            read_buf: BytesMut::new(),
            write_buf: BytesMut::new(),
            decoder: FrameDecoder::new(Role::Peer),
        }
    }

    /// The remote address, when the socket still knows it.
    pub(crate) fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// Encodes `msg` as one frame with `request_id` and writes it.
    pub(crate) async fn send(
        &mut self,
        request_id: u64,
        msg: &PeerMessage,
    ) -> Result<(), ConnError> {
        self.write_buf.clear();
        encode_peer(&mut self.write_buf, request_id, msg)?;
        self.flush_write_buf().await
    }

    async fn flush_write_buf(&mut self) -> Result<(), ConnError> {
        self.stream.write_all(&self.write_buf).await?;
        self.stream.flush().await?;
        // Do not keep a snapshot chunk's worth of memory around per idle connection.
        if self.write_buf.capacity() > READ_CHUNK {
            self.write_buf = BytesMut::new();
        }
        Ok(())
    }

    /// Reads the next peer frame. A decode error that the protocol answers (a frame of a
    /// version we do not speak) is answered with the version-independent `Error` frame
    /// before the error is returned.
    pub(crate) async fn recv(&mut self) -> Result<PeerFrame, ConnError> {
        loop {
            match self.decoder.decode(&mut self.read_buf) {
                Ok(Some(Frame::Peer(frame))) => {
                    if self.read_buf.is_empty() && self.read_buf.capacity() > READ_CHUNK {
                        self.read_buf = BytesMut::new();
                    }
                    return Ok(frame);
                }
                Ok(Some(Frame::Response(r))) => {
                    return Err(ConnError::Refused(format!("{:?}", r.response)));
                }
                Ok(Some(Frame::Request(_))) => {
                    // The peer-role decoder never yields client requests.
                    return Err(ConnError::Refused(
                        "client request on a peer connection".into(),
                    ));
                }
                Ok(None) => self.fill().await?,
                Err(e) => {
                    if let Disposition::Answer {
                        request_id, error, ..
                    } = self.decoder.disposition(&e)
                    {
                        self.write_buf.clear();
                        if encode_error(&mut self.write_buf, request_id, &error).is_ok() {
                            // Best effort: the connection is closed right after.
                            let _ = self.flush_write_buf().await;
                        }
                    }
                    return Err(ConnError::Decode(e));
                }
            }
        }
    }

    /// Reads at least one byte more into the read buffer (bounded: the decoder's need,
    /// which is at most one maximal frame, or one `READ_CHUNK`).
    ///
    /// Cancel-safe: if the future is dropped before the read completes, the buffer is cut
    /// back to the bytes it held (glommio's socket read consumes nothing until it
    /// completes), so a later `recv` continues the same frame.
    async fn fill(&mut self) -> Result<(), ConnError> {
        let have = self.read_buf.len();
        let need = self.decoder.bytes_needed(&self.read_buf);
        let want = need.saturating_sub(have).max(READ_CHUNK);
        self.read_buf.resize(have + want, 0);
        let mut guard = Truncate {
            buf: &mut self.read_buf,
            len: have,
        };
        let read = self.stream.read(&mut guard.buf[have..]).await;
        let n = match read {
            Ok(n) => n,
            Err(e) => return Err(ConnError::Io(e)),
        };
        guard.len = have + n;
        drop(guard);
        if n == 0 {
            return Err(ConnError::Closed);
        }
        Ok(())
    }
}
