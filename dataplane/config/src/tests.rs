use super::*;

#[test]
fn smoke() {
    let b = load_bootstrap(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/bootstrap.yaml"
    )));
    let b = match b {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    let s = match compile(&b, 1) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(s.listeners.len(), 2);
}
