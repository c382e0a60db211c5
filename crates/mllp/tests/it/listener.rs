use std::sync::Arc;
use std::time::Duration;

use rapport_mllp::{frame, serve, Handler, Limits, CR, FS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A listener whose handler answers each message with `ACK:` and the message, after a delay
/// that is longer for the first message (to show answers still come back in order).
async fn start(limits: Limits) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler: Handler = Arc::new(|message: Vec<u8>, _peer| {
        Box::pin(async move {
            if message.starts_with(b"slow") {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            vec![[b"ACK:".as_slice(), &message].concat()]
        })
    });
    tokio::spawn(serve(listener, limits, handler, std::future::pending()));
    addr
}

async fn read_answers(stream: &mut TcpStream, n: usize) -> Vec<String> {
    let mut frames = rapport_mllp::Frames::default();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < n {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(read > 0, "the connection closed early");
        frames.push(&buf[..read]);
        while let Some(f) = frames.next_frame(1 << 20).unwrap() {
            out.push(String::from_utf8(f).unwrap());
        }
    }
    out
}

#[tokio::test]
async fn pipelined_messages_are_answered_in_order_one_frame_each() {
    let addr = start(Limits::default()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut bytes = frame(b"slow one");
    bytes.extend(frame(b"two"));
    bytes.extend(frame(b"three"));
    s.write_all(&bytes).await.unwrap();
    assert_eq!(
        read_answers(&mut s, 3).await,
        ["ACK:slow one", "ACK:two", "ACK:three"]
    );
}

#[tokio::test]
async fn an_oversized_frame_closes_only_its_own_connection() {
    let addr = start(Limits {
        max_frame_bytes: 1000,
        idle_timeout: Duration::from_secs(30),
    })
    .await;
    let mut big = TcpStream::connect(addr).await.unwrap();
    let mut other = TcpStream::connect(addr).await.unwrap();
    let mut oversized = vec![rapport_mllp::VT];
    oversized.extend(vec![b'x'; 5000]);
    big.write_all(&oversized).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), big.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(
        n, 0,
        "the oversized sender is disconnected without an answer"
    );
    other.write_all(&frame(b"fine")).await.unwrap();
    assert_eq!(read_answers(&mut other, 1).await, ["ACK:fine"]);
}

#[tokio::test]
async fn an_idle_connection_with_a_partial_frame_is_closed_without_an_answer() {
    let addr = start(Limits {
        max_frame_bytes: 1 << 20,
        idle_timeout: Duration::from_millis(200),
    })
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&[rapport_mllp::VT, b'M', b'S', b'H'])
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0);
    // FS CR never arrived, so nothing was answered.
    let _ = (FS, CR);
}
