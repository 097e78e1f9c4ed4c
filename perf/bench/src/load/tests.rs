use super::*;

fn config(url: &str) -> LoadConfig {
    LoadConfig {
        url: url.to_owned(),
        target: Target::parse(url).unwrap(),
        method: "GET".to_owned(),
        headers: Vec::new(),
        body_size: 0,
        connections: 10,
        threads: 3,
        duration: None,
        requests: Some(100),
        warmup: Duration::ZERO,
        rate: None,
        new_conn: false,
        timeout: Duration::from_secs(1),
        io: Io::Epoll,
        pin: Vec::new(),
        progress: false,
    }
}

#[test]
fn targets() {
    let t = Target::parse("http://127.0.0.1:8080/a/b?c").unwrap();
    assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(t.authority, "127.0.0.1:8080");
    assert_eq!(t.path, "/a/b?c");

    let t = Target::parse("http://127.0.0.1").unwrap();
    assert_eq!(t.addr.port(), 80);
    assert_eq!(t.path, "/");

    let t = Target::parse("http://127.0.0.1:81?x=1").unwrap();
    assert_eq!(t.path, "/?x=1");

    let t = Target::parse("http://[::1]:9000/").unwrap();
    assert_eq!(t.addr, "[::1]:9000".parse().unwrap());

    for bad in [
        "https://127.0.0.1/",
        "127.0.0.1:80",
        "http:///x",
        "http://u@h/",
    ] {
        assert!(Target::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn request_bytes_frame_the_body() {
    let mut cfg = config("http://127.0.0.1:9/p");
    cfg.method = "POST".to_owned();
    cfg.headers = vec![("x-a".to_owned(), "1".to_owned())];
    cfg.body_size = 3;
    cfg.new_conn = true;
    assert_eq!(
        String::from_utf8(cfg.request_bytes()).unwrap(),
        "POST /p HTTP/1.1\r\nhost: 127.0.0.1:9\r\nx-a: 1\r\ncontent-length: 3\r\n\
         connection: close\r\n\r\nxxx"
    );

    // A Host header given with -H replaces the default one.
    let mut cfg = config("http://127.0.0.1:9/");
    cfg.headers = vec![("Host".to_owned(), "example.com".to_owned())];
    let r = String::from_utf8(cfg.request_bytes()).unwrap();
    assert_eq!(r, "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");

    let parsed = crate::h1::parse_request_head(r.as_bytes());
    assert!(matches!(parsed, Ok(Some(_))));
}

#[test]
fn validation() {
    let ok = config("http://127.0.0.1:9/");
    assert!(ok.validate().is_ok());
    let cases: [fn(&mut LoadConfig); 9] = [
        |c| c.connections = 0,
        |c| c.threads = 0,
        |c| c.rate = Some(0.0),
        |c| c.rate = Some(f64::NAN),
        |c| c.requests = Some(0),
        |c| c.timeout = Duration::ZERO,
        |c| c.headers = vec![("content-length".into(), "1".into())],
        |c| c.headers = vec![("bad name".into(), "1".into())],
        |c| c.method = "GE T".into(),
    ];
    for (i, mutate) in cases.iter().enumerate() {
        let mut c = ok.clone();
        mutate(&mut c);
        assert!(c.validate().is_err(), "case {i}");
    }
}

#[test]
fn plans_split_connections_and_budget() {
    let mut cfg = config("http://127.0.0.1:9/");
    cfg.pin = vec![4, 5];
    let p = plans(&cfg);
    assert_eq!(p.len(), 3);
    assert_eq!(p.iter().map(|p| p.conns).collect::<Vec<_>>(), [4, 3, 3]);
    assert_eq!(
        p.iter().map(|p| p.first_conn).collect::<Vec<_>>(),
        [0, 4, 7]
    );
    assert_eq!(p.iter().filter_map(|p| p.budget).sum::<u64>(), 100);
    assert_eq!(
        p.iter().map(|p| p.pin).collect::<Vec<_>>(),
        [Some(4), Some(5), Some(4)]
    );

    // Never more threads than connections.
    cfg.connections = 2;
    assert_eq!(plans(&cfg).len(), 2);
}
