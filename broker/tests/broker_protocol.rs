//! Raw Kafka protocol against the real binary: garbage, truncated frames, absurd length
//! prefixes, unknown API keys and versions close only the offending connection (or get
//! UNSUPPORTED_VERSION for ApiVersions, KIP-511), while a well-behaved client on another
//! connection keeps working throughout. Also: pipelined requests are answered in order.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::BrokerProcess;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

fn connect(b: &BrokerProcess) -> TcpStream {
    let s = TcpStream::connect(b.kafka).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn frame<T: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &T) -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("raw-test")))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.to_vec()
}

fn read_frame(s: &mut TcpStream) -> Option<Bytes> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).ok()?;
    Some(Bytes::from(body))
}

/// The broker closed the connection: a read returns end of stream (or a reset).
fn assert_closed(s: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 1];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("{what}: expected the connection to be closed, got {other:?}"),
    }
}

fn metadata_ok(b: &BrokerProcess) {
    let mut s = connect(b);
    s.write_all(&frame(ApiKey::Metadata, 12, 7, &MetadataRequest::default().with_topics(None)))
        .unwrap();
    let mut resp = read_frame(&mut s).expect("metadata response");
    let header =
        ResponseHeader::decode(&mut resp, ApiKey::Metadata.response_header_version(12)).unwrap();
    assert_eq!(header.correlation_id, 7);
    let md = MetadataResponse::decode(&mut resp, 12).unwrap();
    assert_eq!(md.brokers.len(), 1);
}

#[test]
fn bad_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    // A well-behaved client stays connected across every abuse below.
    let mut good = connect(&broker);
    let mut good_id = 100;
    let mut check_good = |good: &mut TcpStream| {
        good_id += 1;
        good.write_all(&frame(
            ApiKey::ApiVersions,
            3,
            good_id,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("t"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        ))
        .unwrap();
        let mut r = read_frame(good).expect("the good connection still answers");
        let h = ResponseHeader::decode(&mut r, 0).unwrap();
        assert_eq!(h.correlation_id, good_id);
        let v = ApiVersionsResponse::decode(&mut r, 3).unwrap();
        assert_eq!(v.error_code, 0);
    };
    check_good(&mut good);

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", {
            let mut v = 12i32.to_be_bytes().to_vec();
            v.extend_from_slice(b"\xde\xad\xbe\xef garbage");
            v
        }),
        ("2 GiB length prefix", 0x7fff_ffffi32.to_be_bytes().to_vec()),
        ("negative length prefix", (-5i32).to_be_bytes().to_vec()),
        ("frame shorter than a header", {
            let mut v = 3i32.to_be_bytes().to_vec();
            v.extend_from_slice(&[0, 3, 0]);
            v
        }),
        (
            "unknown API key",
            frame(ApiKey::ApiVersions, 0, 1, &ApiVersionsRequest::default())
                .into_iter()
                .enumerate()
                .map(|(i, b)| match i {
                    4 => 0x03,
                    5 => 0xe7,
                    _ => b,
                }) // key 999
                .collect(),
        ),
        ("unsupported Metadata version", {
            let mut f = frame(ApiKey::Metadata, 12, 1, &MetadataRequest::default());
            f[6..8].copy_from_slice(&99i16.to_be_bytes());
            f
        }),
        ("unimplemented API (ConsumerGroupHeartbeat, KIP-848)", {
            let mut f = frame(ApiKey::Metadata, 12, 1, &MetadataRequest::default());
            f[4..6].copy_from_slice(&(ApiKey::ConsumerGroupHeartbeat as i16).to_be_bytes());
            f[6..8].copy_from_slice(&0i16.to_be_bytes());
            f
        }),
        ("malformed body", {
            let mut v = Vec::new();
            v.extend_from_slice(&14i32.to_be_bytes());
            v.extend_from_slice(&(ApiKey::Metadata as i16).to_be_bytes());
            v.extend_from_slice(&4i16.to_be_bytes());
            v.extend_from_slice(&1i32.to_be_bytes());
            v.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
            v.extend_from_slice(&1000i32.to_be_bytes()); // 1000 topics, none present
            v
        }),
        // Array counts far beyond what the frame holds: a decoder that sized its vector from
        // the count would ask for hundreds of GiB and abort the whole process.
        ("array count i32::MAX", {
            let mut v = Vec::new();
            v.extend_from_slice(&14i32.to_be_bytes());
            v.extend_from_slice(&(ApiKey::Metadata as i16).to_be_bytes());
            v.extend_from_slice(&4i16.to_be_bytes());
            v.extend_from_slice(&1i32.to_be_bytes());
            v.extend_from_slice(&(-1i16).to_be_bytes());
            v.extend_from_slice(&i32::MAX.to_be_bytes());
            v
        }),
        ("compact array count u32::MAX", {
            let mut v = Vec::new();
            v.extend_from_slice(&(ApiKey::Metadata as i16).to_be_bytes());
            v.extend_from_slice(&12i16.to_be_bytes());
            v.extend_from_slice(&1i32.to_be_bytes());
            v.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
            v.push(0); // no header tagged fields
            v.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // varint 2^32 - 1: 2^32 - 2 topics
            let mut f = (v.len() as i32).to_be_bytes().to_vec();
            f.extend_from_slice(&v);
            f
        }),
    ];
    for (what, bytes) in cases {
        let mut s = connect(&broker);
        s.write_all(&bytes).unwrap();
        assert_closed(&mut s, what);
        check_good(&mut good);
    }
    // A truncated frame followed by the client going away.
    {
        let mut s = connect(&broker);
        s.write_all(&100i32.to_be_bytes()).unwrap();
        s.write_all(&[1, 2, 3]).unwrap();
    }
    check_good(&mut good);

    // KIP-511: an ApiVersions version the broker does not know gets UNSUPPORTED_VERSION in the
    // v0 layout, with the supported ranges.
    let mut s = connect(&broker);
    let mut f = frame(ApiKey::ApiVersions, 0, 42, &ApiVersionsRequest::default());
    f[6..8].copy_from_slice(&77i16.to_be_bytes());
    s.write_all(&f).unwrap();
    let mut r = read_frame(&mut s).expect("ApiVersions fallback response");
    assert_eq!(r.get_i32(), 42);
    let v = ApiVersionsResponse::decode(&mut r, 0).unwrap();
    assert_eq!(v.error_code, 35);
    let produce = v.api_keys.iter().find(|k| k.api_key == 0).unwrap();
    assert_eq!((produce.min_version, produce.max_version), (3, 12));
    assert!(
        v.api_keys.iter().all(|k| k.api_key != ApiKey::ConsumerGroupHeartbeat as i16),
        "unimplemented APIs are not advertised"
    );

    metadata_ok(&broker);
    let (_, metrics) = broker.http_get("/metrics");
    assert!(
        metrics.contains("sluice_connections_closed_total{reason=\"frame_size\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("sluice_connections_closed_total{reason=\"unknown_api\"}"));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut s = connect(&broker);
    let mut all = Vec::new();
    for id in 0..50 {
        if id % 2 == 0 {
            all.extend(frame(
                ApiKey::Metadata,
                9,
                id,
                &MetadataRequest::default().with_topics(Some(vec![])),
            ));
        } else {
            all.extend(frame(ApiKey::ApiVersions, 2, id, &ApiVersionsRequest::default()));
        }
    }
    s.write_all(&all).unwrap();
    for id in 0..50 {
        let mut r = read_frame(&mut s).expect("response");
        assert_eq!(r.get_i32(), id, "responses come back in request order");
    }
}
