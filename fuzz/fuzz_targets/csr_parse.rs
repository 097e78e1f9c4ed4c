//! Certificate signing requests from arbitrary bytes, as DER and as PEM text: the checker
//! never panics, every refusal maps to a counted reason that is not an internal error, and
//! an accepted request names exactly one well-formed SPIFFE identity and a public key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spar_ca::csr::{MAX_CSR_BYTES, check_csr, csr_der_from_pem};
use spar_ca::spiffe::SpiffeId;
use spar_ca::{Reason, Refusal};

fn check(der: &[u8]) {
    match check_csr(der) {
        Ok(csr) => {
            assert!(der.len() <= MAX_CSR_BYTES);
            assert!(!csr.public_key.is_empty());
            let printed = csr.identity.to_string();
            assert_eq!(SpiffeId::parse(&printed).as_ref(), Ok(&csr.identity));
        }
        Err(e) => {
            let refusal = Refusal::from(e);
            assert_ne!(refusal.reason, Reason::Internal);
            assert!(!refusal.message.is_empty());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Ok(text) = std::str::from_utf8(data) {
        match csr_der_from_pem(text) {
            Ok(der) => check(&der),
            Err(e) => assert_eq!(Refusal::from(e).reason, Reason::MalformedCsr),
        }
    }
});
