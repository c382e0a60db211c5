use rapport_mllp::{FrameError, Frames, CR, FS, VT};

const LIMIT: usize = 1024;

fn frames_of(reads: &[&[u8]]) -> Vec<Vec<String>> {
    let mut f = Frames::default();
    reads
        .iter()
        .map(|r| {
            f.push(r);
            let mut out = Vec::new();
            while let Some(m) = f.next_frame(LIMIT).unwrap() {
                out.push(String::from_utf8(m).unwrap());
            }
            out
        })
        .collect()
}

fn framed(s: &str) -> Vec<u8> {
    rapport_mllp::frame(s.as_bytes())
}

#[test]
fn b07_a_trailer_split_off_yields_the_frame_only_once_complete() {
    // Case A: the whole trailer in the second read.
    let body = "MSH|^~\\&|RCV|FAC01|PRM|FAC01|20230401120000||ACK^A01^ACK|ACK0001|P|2.5\rMSA|AA|CTRL0013\r";
    let mut read1 = vec![VT];
    read1.extend_from_slice(body.as_bytes());
    assert_eq!(
        frames_of(&[&read1, &[FS, CR]]),
        vec![vec![], vec![body.to_owned()]]
    );
    // Case B: split inside the trailer.
    let mut read1 = vec![VT];
    read1.extend_from_slice(body.as_bytes());
    read1.push(FS);
    assert_eq!(
        frames_of(&[&read1, &[CR]]),
        vec![vec![], vec![body.to_owned()]]
    );
}

#[test]
fn b07_pipelined_frames_come_out_in_order_and_noise_between_them_is_dropped() {
    let (a, b, c) = (
        "MSH|^~\\&|ADT|HOSP01|PRM|FAC01|20230401120001||ADT^A08|CTRL0015|P|2.5\rPID|1||000123^^^HOSP01^MR||TEST^ONE\r",
        "MSH|^~\\&|ADT|HOSP01|PRM|FAC01|20230401120001||ADT^A08|CTRL0016|P|2.5\rPID|1||000124^^^HOSP01^MR||TEST^TWO\r",
        "MSH|^~\\&|ADT|HOSP01|PRM|FAC01|20230401120001||ADT^A08|CTRL0017|P|2.5\rPID|1||000125^^^HOSP01^MR||TEST^THREE\r",
    );
    let mut read1 = framed(a);
    read1.extend_from_slice(b"\r\n");
    read1.extend(framed(b));
    let third = framed(c);
    let (head, tail) = third.split_at(40);
    read1.extend_from_slice(head);
    let got = frames_of(&[&read1, tail]);
    assert_eq!(
        got,
        vec![vec![a.to_owned(), b.to_owned()], vec![c.to_owned()]]
    );
}

#[test]
fn a_frame_over_the_limit_is_an_error_and_a_byte_at_a_time_still_works() {
    let mut f = Frames::default();
    f.push(&[VT]);
    f.push(&vec![b'x'; LIMIT + 1]);
    assert_eq!(
        f.next_frame(LIMIT),
        Err(FrameError::TooLarge { limit: LIMIT })
    );
    // One byte per read, the worst TCP can do.
    let body = "MSH|^~\\&|A|B|C|D|20230401||ADT^A01|X1|P|2.5\r";
    let bytes = framed(body);
    let reads: Vec<&[u8]> = bytes.chunks(1).collect();
    let got: Vec<String> = frames_of(&reads).into_iter().flatten().collect();
    assert_eq!(got, vec![body.to_owned()]);
}

#[test]
fn b07_a_frame_abandoned_before_its_trailer_does_not_swallow_the_next_one() {
    let next =
        "MSH|^~\\&|ADT|HOSP01|PRM|FAC01|2023||ADT^A08|CTRL0043|P|2.5\rPID|1||000143^^^HOSP01^MR\r";
    let mut bytes = vec![VT];
    bytes.extend_from_slice(
        b"MSH|^~\\&|ADT|HOSP01|PRM|FAC01|2023||ADT^A08|CTRL0042|P|2.5\rPID|1||00014",
    );
    bytes.extend(framed(next));
    let got: Vec<String> = frames_of(&[&bytes]).into_iter().flatten().collect();
    assert_eq!(got, vec![next.to_owned()]);
    // Also when the new frame starts in a later read.
    let mut first = vec![VT];
    first.extend_from_slice(b"MSH|^~\\&|PARTIAL");
    let got: Vec<String> = frames_of(&[&first, &framed(next)])
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(got, vec![next.to_owned()]);
}
