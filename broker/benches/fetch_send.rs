//! How a Fetch response's record sets are best sent: `sendfile` from the page cache, or read
//! into an exact buffer and written with the bytes around them (`writev`). One response of
//! `ranges` file ranges of `size` bytes each, with a small in-memory part before each (as the
//! encoder makes them), sent over loopback to a reader that copies everything into a buffer of
//! its own, as a client does. The file is in the page cache. `zero_copy::SENDFILE_MIN_BYTES` is
//! the threshold this measures.
//!
//! Run with `cargo bench -p sluice-broker --bench fetch_send`.

use std::io::{Read, Write};
use std::net::TcpListener;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_broker::zero_copy::{send_parts_with, FileSlice, Part, SegmentFile};

/// The broker's allocator: the copy path allocates a buffer per range, and its cost depends on
/// it (glibc's malloc hands multi-MiB buffers back to the kernel on every free).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FILE_BYTES: usize = 64 << 20;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut f = tempfile::tempfile().unwrap();
    let data: Vec<u8> =
        (0..FILE_BYTES as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    f.write_all(&data).unwrap();
    let mut warm = Vec::new();
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(0)).unwrap();
    f.read_to_end(&mut warm).unwrap();
    drop(warm);
    let file = SegmentFile::new(f);

    // A reader on its own thread, copying whatever arrives, as a client does.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 1 << 20];
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    });
    let mut wr = rt.block_on(async {
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        s.into_split().1
    });
    let head = Bytes::from(vec![7u8; 80]);
    let mut group = c.benchmark_group("fetch_send");
    for (ranges, size) in
        [(1, 16 << 10), (1, 64 << 10), (1, 1 << 20), (8, 16 << 10), (8, 64 << 10), (8, 1 << 20)]
    {
        group.throughput(Throughput::Bytes((ranges * size) as u64));
        let mut at = 0u64;
        for (mode, min) in [("sendfile", 0), ("copy", usize::MAX)] {
            let id = BenchmarkId::new(mode, format!("{ranges}x{}KiB", size >> 10));
            group.bench_function(id, |b| {
                b.iter(|| {
                    let mut parts = Vec::with_capacity(2 * ranges + 1);
                    for _ in 0..ranges {
                        if at as usize + size > FILE_BYTES {
                            at = 0;
                        }
                        parts.push(Part::Bytes(head.clone()));
                        parts.push(Part::File(FileSlice::new(&file, at, size)));
                        at += size as u64;
                    }
                    parts.push(Part::Bytes(Bytes::from_static(b"\0")));
                    rt.block_on(send_parts_with(&mut wr, &parts, min)).unwrap();
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
