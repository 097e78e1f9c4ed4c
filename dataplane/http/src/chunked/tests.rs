// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// Decodes `input` fed in `pieces`, returning the body, whether End was reached, the first
/// error, and what was left in the buffer.
fn decode_in_pieces(pieces: &[&[u8]]) -> (Vec<u8>, bool, Option<ChunkError>, Vec<u8>) {
    let mut decoder = ChunkedDecoder::new(1024);
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Chunk::Data(data)) => body.extend_from_slice(&data),
                Ok(Chunk::NeedMore) => break,
                Ok(Chunk::End) => {
                    let rest: Vec<u8> = pieces[i + 1..].concat();
                    buf.extend_from_slice(&rest);
                    return (body, true, None, buf.to_vec());
                }
                Err(e) => return (body, false, Some(e), buf.to_vec()),
            }
        }
    }
    (body, false, None, buf.to_vec())
}

fn decode_all(input: &[u8]) -> Result<Vec<u8>, ChunkError> {
    match decode_in_pieces(&[input]) {
        (body, true, None, _) => Ok(body),
        (_, _, Some(e), _) => Err(e),
        (_, false, None, _) => panic!("incomplete: {:?}", String::from_utf8_lossy(input)),
    }
}

const BODY: &[u8] =
    b"5\r\nhello\r\n1;ext=\"a;b\"\r\n \r\nb\r\nhello world\r\n0\r\nX-Trailer: yes\r\n\r\nGET /next";

#[test]
fn every_byte_boundary_reassembles_exactly() {
    let expected = b"hello hello world".to_vec();
    let rest = b"GET /next".to_vec();
    assert_eq!(
        decode_in_pieces(&[BODY]),
        (expected.clone(), true, None, rest.clone())
    );
    // Byte by byte.
    let bytes: Vec<&[u8]> = BODY.chunks(1).collect();
    assert_eq!(
        decode_in_pieces(&bytes),
        (expected.clone(), true, None, rest.clone())
    );
    // Two reads split at every point, and three reads at every pair of points.
    for i in 0..=BODY.len() {
        let (a, b) = BODY.split_at(i);
        assert_eq!(
            decode_in_pieces(&[a, b]),
            (expected.clone(), true, None, rest.clone()),
            "split {i}"
        );
        for j in i..=BODY.len() {
            let (a, bc) = BODY.split_at(i);
            let (b, c) = bc.split_at(j - i);
            assert_eq!(decode_in_pieces(&[a, b, c]).0, expected);
        }
    }
}

#[test]
fn data_is_split_off_without_copying() {
    let mut buf = BytesMut::from(&b"5\r\nhello\r\n0\r\n\r\n"[..]);
    let start = buf.as_ptr() as usize;
    let mut decoder = ChunkedDecoder::new(0);
    let Ok(Chunk::Data(data)) = decoder.decode(&mut buf) else {
        panic!("no data");
    };
    assert_eq!(&data[..], b"hello");
    assert_eq!(data.as_ptr() as usize, start + 3);
    assert_eq!(decoder.decode(&mut buf), Ok(Chunk::End));
    assert!(decoder.is_done());
    assert_eq!(decoder.decode(&mut buf), Ok(Chunk::End));
}

#[test]
fn partial_data_is_handed_out_as_it_arrives() {
    let mut decoder = ChunkedDecoder::new(0);
    let mut buf = BytesMut::from(&b"a\r\n0123"[..]);
    assert_eq!(
        decoder.decode(&mut buf),
        Ok(Chunk::Data(Bytes::from_static(b"0123")))
    );
    assert_eq!(decoder.decode(&mut buf), Ok(Chunk::NeedMore));
    buf.extend_from_slice(b"456789\r");
    assert_eq!(
        decoder.decode(&mut buf),
        Ok(Chunk::Data(Bytes::from_static(b"456789")))
    );
    assert_eq!(decoder.decode(&mut buf), Ok(Chunk::NeedMore));
    buf.extend_from_slice(b"\n0\r\n\r\n");
    assert_eq!(decoder.decode(&mut buf), Ok(Chunk::End));
    assert!(buf.is_empty());
}

#[test]
fn sizes() {
    let ok: &[(&[u8], u64)] = &[
        (b"0", 0),
        (b"1", 1),
        (b"A", 10),
        (b"ff", 255),
        (b"0000000000000010", 16),
        (b"ffffffffffffffff", u64::MAX),
        (b"FFFFFFFFFFFFFFFF", u64::MAX),
    ];
    for (line, size) in ok {
        let line = [line, &b"\r"[..]].concat();
        assert_eq!(
            parse_size_line(&line),
            Ok(*size),
            "{:?}",
            String::from_utf8_lossy(&line)
        );
    }
    let bad: &[&[u8]] = &[
        b"",
        b"x",
        b"0x5",
        b" 5",
        b"5 ",
        b"5\t",
        b"+5",
        b"-5",
        b"5.0",
        b"5,5",
        b"5 5",
        b"00000000000000001",
        b"10000000000000000",
        b"fffffffffffffffff",
        b"5\r",
        b"\xff",
    ];
    for line in bad {
        let input = [line, &b"\r\n"[..]].concat();
        assert_eq!(
            decode_all(&input),
            Err(ChunkError::BadSize),
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn bad_sizes_are_refused_before_the_line_ends() {
    for prefix in [&b"x"[..], b" ", b"00000000000000000"] {
        let mut buf = BytesMut::from(prefix);
        assert_eq!(
            ChunkedDecoder::new(0).decode(&mut buf),
            Err(ChunkError::BadSize)
        );
    }
    let mut long = BytesMut::from(&b"5;a="[..]);
    long.extend_from_slice(&[b'b'; MAX_CHUNK_LINE_BYTES]);
    assert_eq!(
        ChunkedDecoder::new(0).decode(&mut long),
        Err(ChunkError::BadExtension)
    );
    let mut fits = BytesMut::from(&b"5;a="[..]);
    fits.extend_from_slice(&[b'b'; MAX_CHUNK_LINE_BYTES - 7]);
    fits.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    let mut decoder = ChunkedDecoder::new(0);
    assert_eq!(
        decoder.decode(&mut fits),
        Ok(Chunk::Data(Bytes::from_static(b"hello")))
    );
}

#[test]
fn extensions() {
    let ok: &[&[u8]] = &[
        b";a",
        b";a=b",
        b";a=\"b c\"",
        b";a=\"\"",
        b";a=\"q\\\"x\"",
        b";a;b=c;d",
        b" ;a",
        b"\t; a = b ; c",
        b";a=\"\xc3\xa9\"",
        b";!#$%&'*+-.^_`|~=x",
    ];
    for ext in ok {
        let input = [&b"1"[..], ext, b"\r\nx\r\n0\r\n\r\n"].concat();
        assert_eq!(
            decode_all(&input),
            Ok(b"x".to_vec()),
            "{:?}",
            String::from_utf8_lossy(ext)
        );
    }
    let bad: &[&[u8]] = &[
        b";",
        b"; ",
        b";a ",
        b";a=",
        b";a= ",
        b";a=b ",
        b";=b",
        b";a b",
        b";a=b c",
        b";a=\"b",
        b";a=\"\x01\"",
        b";a=\"\\\x01\"",
        b";a=b;",
        b";a,b",
        b";a=(b)",
        b";a=\"b\"c",
    ];
    for ext in bad {
        let input = [&b"1"[..], ext, b"\r\nx\r\n0\r\n\r\n"].concat();
        assert_eq!(
            decode_all(&input),
            Err(ChunkError::BadExtension),
            "{:?}",
            String::from_utf8_lossy(ext)
        );
    }
}

#[test]
fn terminators() {
    let bad: &[&[u8]] = &[
        b"5\r\nhelloX\r\n0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"5\r\nhello\r\r\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5;a\nhello\r\n0\r\n\r\n",
        b"0\n\r\n",
        b"0\r\n\n",
        b"0\r\nX: y\n\r\n",
    ];
    for input in bad {
        assert_eq!(
            decode_all(input),
            Err(ChunkError::BadTerminator),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    // A lone CR after data waits for its LF; any other byte fails at once.
    let mut decoder = ChunkedDecoder::new(0);
    let mut buf = BytesMut::from(&b"1\r\nx\r"[..]);
    assert!(matches!(decoder.decode(&mut buf), Ok(Chunk::Data(_))));
    assert_eq!(decoder.decode(&mut buf), Ok(Chunk::NeedMore));
    let mut decoder = ChunkedDecoder::new(0);
    let mut buf = BytesMut::from(&b"1\r\nxy"[..]);
    assert!(matches!(decoder.decode(&mut buf), Ok(Chunk::Data(_))));
    assert_eq!(decoder.decode(&mut buf), Err(ChunkError::BadTerminator));
    // The error sticks.
    buf.clear();
    buf.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(decoder.decode(&mut buf), Err(ChunkError::BadTerminator));
}

#[test]
fn trailers() {
    let ok: &[&[u8]] = &[
        b"0\r\n\r\n",
        b"0\r\nX-A: b\r\n\r\n",
        b"0\r\nX-A:b\r\nX-B:  c d \t\r\nX-C:\r\n\r\n",
        b"0\r\nX-A: \xc3\xa9\r\n\r\n",
    ];
    for input in ok {
        let rest = b"NEXT";
        let all = [input, &rest[..]].concat();
        assert_eq!(
            decode_in_pieces(&[&all]),
            (Vec::new(), true, None, rest.to_vec()),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    let bad: &[&[u8]] = &[
        b"0\r\nX-A : b\r\n\r\n",
        b"0\r\n X-A: b\r\n\r\n",
        b"0\r\nX-A: b\r\n folded\r\n\r\n",
        b"0\r\nX-A\r\n\r\n",
        b"0\r\n: b\r\n\r\n",
        b"0\r\nX-A: b\x00\r\n\r\n",
        b"0\r\nX-A: b\rc\r\n\r\n",
        b"0\r\nX(A): b\r\n\r\n",
    ];
    for input in bad {
        assert_eq!(
            decode_all(input),
            Err(ChunkError::BadTrailer),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn trailer_limit_on_partial_and_complete_input() {
    let decode = |max: usize, input: &[u8]| {
        let mut decoder = ChunkedDecoder::new(max);
        let mut buf = BytesMut::from(input);
        decoder.decode(&mut buf)
    };
    // "X-A: bcd\r\n" is 10 bytes.
    assert_eq!(decode(10, b"0\r\nX-A: bcd\r\n\r\n"), Ok(Chunk::End));
    assert_eq!(
        decode(9, b"0\r\nX-A: bcd\r\n\r\n"),
        Err(ChunkError::TrailersTooLarge)
    );
    assert_eq!(
        decode(9, b"0\r\nX-A: bcd\r"),
        Err(ChunkError::TrailersTooLarge)
    );
    assert_eq!(decode(10, b"0\r\nX-A: bcd\r"), Ok(Chunk::NeedMore));
    assert_eq!(
        decode(10, b"0\r\nX-A: bcd\r\nY"),
        Err(ChunkError::TrailersTooLarge)
    );
    assert_eq!(decode(10, b"0\r\nX-A: bcd\r\n\r"), Ok(Chunk::NeedMore));
    // No trailers fit in a zero limit.
    assert_eq!(decode(0, b"0\r\n\r"), Ok(Chunk::NeedMore));
    assert_eq!(decode(0, b"0\r\n\r\n"), Ok(Chunk::End));
}

#[test]
fn encode_chunk_header_round_trips() {
    let cases: &[(usize, &[u8])] = &[
        (1, b"1\r\n"),
        (10, b"a\r\n"),
        (255, b"ff\r\n"),
        (4096, b"1000\r\n"),
        (usize::MAX, b"ffffffffffffffff\r\n"),
    ];
    for (len, expected) in cases {
        let mut out = BytesMut::new();
        encode_chunk_header(&mut out, *len);
        assert_eq!(&out[..], *expected);
    }
    let mut out = BytesMut::new();
    for data in [&b"hello"[..], &[7u8; 300]] {
        encode_chunk_header(&mut out, data.len());
        out.extend_from_slice(data);
        out.extend_from_slice(CHUNK_END);
    }
    out.extend_from_slice(LAST_CHUNK);
    let mut expected = b"hello".to_vec();
    expected.extend_from_slice(&[7u8; 300]);
    assert_eq!(decode_all(&out), Ok(expected));
}

#[test]
fn error_reasons() {
    use ChunkError::*;
    for e in [
        BadSize,
        BadExtension,
        BadTerminator,
        TrailersTooLarge,
        BadTrailer,
    ] {
        assert!(
            e.reason()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_')
        );
    }
}

#[test]
fn position_says_what_comes_next_and_trailers_are_kept() {
    use super::Position;
    let mut d = ChunkedDecoder::new(1024);
    assert_eq!(d.position(), Position::BetweenChunks);
    let mut buf = BytesMut::from(&b"5\r\nab"[..]);
    assert!(matches!(d.decode(&mut buf), Ok(Chunk::Data(x)) if &x[..] == b"ab"));
    assert_eq!(d.position(), Position::InChunk(3));
    buf.extend_from_slice(b"cde");
    assert!(matches!(d.decode(&mut buf), Ok(Chunk::Data(x)) if &x[..] == b"cde"));
    assert_eq!(d.position(), Position::AfterChunkData);
    buf.extend_from_slice(b"\r\n0\r\ngrpc-status: 0\r\ngrpc-message:  ok \r\n\r\n");
    assert!(matches!(d.decode(&mut buf), Ok(Chunk::End)));
    assert_eq!(d.position(), Position::Ended);
    let t = d.take_trailers();
    assert_eq!(t.len(), 2);
    assert_eq!(
        (&t[0].name[..], &t[0].value[..]),
        (&b"grpc-status"[..], &b"0"[..])
    );
    assert_eq!(
        (&t[1].name[..], &t[1].value[..]),
        (&b"grpc-message"[..], &b"ok"[..])
    );
}
