//! Chunked bodies from arbitrary bytes: decoding them in one read and in reads of a size
//! the input chooses must give the same body, the same outcome and the same leftover.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use spar_http::{Chunk, ChunkedDecoder};

#[derive(Debug, PartialEq)]
enum Outcome {
    /// Body complete; the bytes left after it.
    End(Vec<u8>),
    Failed,
    Incomplete,
}

fn decode(pieces: &[&[u8]]) -> (Vec<u8>, Outcome) {
    // Small, so the fuzzer reaches the trailer limit.
    let mut decoder = ChunkedDecoder::new(64);
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Chunk::Data(data)) => {
                    assert!(!data.is_empty());
                    assert!(buf.len() + data.len() <= before);
                    body.extend_from_slice(&data);
                }
                Ok(Chunk::NeedMore) => break,
                Ok(Chunk::End) => {
                    assert_eq!(decoder.decode(&mut buf), Ok(Chunk::End));
                    let mut rest = buf.to_vec();
                    rest.extend(pieces[i + 1..].iter().copied().flatten());
                    return (body, Outcome::End(rest));
                }
                Err(e) => {
                    assert_eq!(decoder.decode(&mut buf), Err(e));
                    return (body, Outcome::Failed);
                }
            }
        }
    }
    (body, Outcome::Incomplete)
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let pieces: Vec<&[u8]> = input.chunks(usize::from(step).max(1)).collect();
    // Which error is found first may differ (a bad size line is refused before its LF
    // arrives), but not whether there is one, nor the data before it.
    assert_eq!(decode(&[input]), decode(&pieces));
});
