//! SPIFFE IDs and Kubernetes service-account usernames from arbitrary strings: parsing never
//! panics; what parses prints back to the very same string (so comparing identities is
//! comparing strings), rebuilds from its parts, and a service account always has an
//! identity.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spar_ca::spiffe::{ServiceAccount, SpiffeId};

fuzz_target!(|input: &str| {
    if let Ok(id) = SpiffeId::parse(input) {
        assert_eq!(id.to_string(), input);
        assert_eq!(format!("spiffe://{}", id.principal()), input);
        let rebuilt = SpiffeId::new(id.trust_domain(), id.namespace(), id.service_account());
        assert_eq!(rebuilt.as_ref(), Ok(&id));
    }
    if let Ok(account) = ServiceAccount::from_username(input) {
        assert_eq!(account.username(), input);
        assert_eq!(
            ServiceAccount::new(account.namespace(), account.name()).as_ref(),
            Ok(&account)
        );
        let id = SpiffeId::for_account("cluster.local", &account)
            .expect("a valid service account has an identity");
        assert_eq!(SpiffeId::parse(&id.to_string()).as_ref(), Ok(&id));
    }
});
