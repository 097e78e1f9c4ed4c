//! ClientHello peek from arbitrary bytes: it never panics, and the answer for the bytes of
//! two arbitrary reads (the input cut at two points the input chooses) is either NeedMore or
//! the answer for the whole input, which is reached within MAX_PEEK_BYTES.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spar_tls::client_hello::{MAX_PEEK_BYTES, Peek, peek};

fuzz_target!(|data: &[u8]| {
    let Some((&[a, b], input)) = data.split_first_chunk::<2>() else {
        return;
    };
    let whole = peek(input);
    let cut = |at: u8| input.len() * usize::from(at) / 255;
    let (first, second) = (cut(a.min(b)), cut(a.max(b)));
    for prefix in [&input[..first], &input[..second]] {
        let answer = peek(prefix);
        if answer != Peek::NeedMore {
            assert_eq!(answer, whole);
        }
    }
    if input.len() > MAX_PEEK_BYTES {
        assert_eq!(peek(&input[..MAX_PEEK_BYTES]), whole);
    }
    if let Peek::Hello(hello) = &whole {
        assert!(hello.len <= input.len().min(MAX_PEEK_BYTES));
        assert_eq!(peek(&input[..hello.len]), whole);
    }
});
