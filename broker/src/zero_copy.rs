//! Record sets sent from the log file to the socket without passing through a buffer of ours.
//!
//! A read of the log hands out a [`FileSlice`]: a shared handle on the segment file
//! ([`SegmentFile`]) plus a byte range of whole batches, fixed under the partition's lock. A Fetch
//! response is then a list of [`Part`]s: its encoded header fields in memory, and each
//! partition's records as a file range, which [`send_parts`] writes with `sendfile(2)` (the
//! kernel copies page cache → socket, as Kafka's `FileRecords.writeTo` has it do). Ranges under
//! [`SENDFILE_MIN_BYTES`] are read into a buffer of exactly their size and go out in the same
//! `writev` as the bytes around them: for small record sets one system call beats two.
//!
//! Why this is sound without `unsafe`: `rustix::fs::sendfile` and `rustix::io::pread` are safe
//! functions over borrowed descriptors, the explicit file offset never moves the descriptor's
//! own position (appends use `pwrite`, reads `pread`), so one `SegmentFile` serves every
//! connection at once. What can happen to the file while a slice is out:
//! - retention, DeleteRecords, a compaction swap, topic deletion unlink the file: the inode
//!   lives while a slice holds the descriptor, and the original bytes are sent;
//! - a follower's truncation (`set_len` in place) shrinks it: [`SegmentFile::truncated`] bumps
//!   a counter *before* the file shrinks, the sender checks it before every chunk, and a short
//!   transfer counts as a shrink too. The frame's size is already on the wire, so the only
//!   honest answer is to close the connection, as Kafka does ("has been truncated during
//!   write"). Batch CRCs cover the window between the check and the system call.

use std::fs::File;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;

/// File ranges at least this long are sent with `sendfile`; shorter ones are read and written
/// with the bytes around them (`cargo bench -p sluice-broker --bench fetch_send`).
pub const SENDFILE_MIN_BYTES: usize = 16 * 1024;

/// Most bytes one `sendfile` call is asked for (Linux transfers at most 0x7ffff000 anyway).
const SENDFILE_CHUNK: usize = 0x7fff_f000;

/// Most buffers one `writev` is given (Linux's `IOV_MAX`).
const MAX_IOVECS: usize = 1024;

/// A segment's log file, shared by the segment and the slices read from it.
#[derive(Debug)]
pub struct SegmentFile {
    file: File,
    /// Bumped before every shrink of the file: a slice taken before it may no longer be there.
    truncations: AtomicU64,
}

impl SegmentFile {
    pub fn new(file: File) -> Arc<Self> {
        Arc::new(SegmentFile { file, truncations: AtomicU64::new(0) })
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// To be called before the file is shrunk: slices taken earlier stop being sent.
    pub fn truncated(&self) {
        self.truncations.fetch_add(1, Ordering::Release);
    }
}

/// Whole record batches: `len` bytes at `position` of a segment file.
#[derive(Clone, Debug)]
pub struct FileSlice {
    file: Arc<SegmentFile>,
    position: u64,
    len: usize,
    /// The file's truncation count when the slice was taken.
    truncations: u64,
}

/// The file under a slice shrank after the slice was taken.
#[derive(Debug, thiserror::Error)]
#[error("the log file shrank under a {len} byte read at position {position}")]
pub struct Truncated {
    pub position: u64,
    pub len: usize,
}

impl FileSlice {
    /// Taken under the partition's lock, so the range holds whole batches at this moment.
    pub fn new(file: &Arc<SegmentFile>, position: u64, len: usize) -> Self {
        let truncations = file.truncations.load(Ordering::Acquire);
        FileSlice { file: file.clone(), position, len, truncations }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn intact(&self) -> bool {
        self.file.truncations.load(Ordering::Acquire) == self.truncations
    }

    fn truncated_error(&self) -> io::Error {
        io::Error::other(Truncated { position: self.position, len: self.len })
    }

    /// The bytes, read into a buffer of exactly their size (never zero-filled first).
    pub fn read_to_vec(&self) -> io::Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(self.len);
        while buf.len() < self.len {
            if !self.intact() {
                return Err(self.truncated_error());
            }
            let at = self.position + buf.len() as u64;
            match rustix::io::pread(&self.file.file, rustix::buffer::spare_capacity(&mut buf), at) {
                // End of file before the end of the slice: it shrank.
                Ok(0) => return Err(self.truncated_error()),
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !self.intact() {
            return Err(self.truncated_error());
        }
        Ok(buf)
    }
}

/// One piece of an encoded response, in wire order.
#[derive(Clone, Debug)]
pub enum Part {
    Bytes(Bytes),
    File(FileSlice),
}

impl Part {
    pub fn len(&self) -> usize {
        match self {
            Part::Bytes(b) => b.len(),
            Part::File(f) => f.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Writes the parts in order: runs of in-memory parts (and file ranges under
/// [`SENDFILE_MIN_BYTES`], read first) with `writev`, longer file ranges with `sendfile`. An
/// error whose inner error is [`Truncated`] means a file shrank mid-response: the connection
/// must close.
pub async fn send_parts(wr: &mut OwnedWriteHalf, parts: &[Part]) -> io::Result<()> {
    send_parts_with(wr, parts, SENDFILE_MIN_BYTES).await
}

/// [`send_parts`] with file ranges of at least `sendfile_min` bytes sent with `sendfile` (the
/// benchmark of the threshold compares values).
pub async fn send_parts_with(
    wr: &mut OwnedWriteHalf,
    parts: &[Part],
    sendfile_min: usize,
) -> io::Result<()> {
    let sends_files = parts.iter().any(|p| matches!(p, Part::File(f) if f.len >= sendfile_min));
    if !sends_files {
        return write_parts(wr, parts, sendfile_min).await;
    }
    // Corked, the kernel packs the small pieces around each file range into full segments
    // with the file's pages, instead of pushing each alone (the socket has TCP_NODELAY).
    let stream: &tokio::net::TcpStream = wr.as_ref();
    rustix::net::sockopt::set_tcp_cork(stream, true)?;
    let sent = write_parts(wr, parts, sendfile_min).await;
    let stream: &tokio::net::TcpStream = wr.as_ref();
    rustix::net::sockopt::set_tcp_cork(stream, false)?;
    sent
}

async fn write_parts(
    wr: &mut OwnedWriteHalf,
    parts: &[Part],
    sendfile_min: usize,
) -> io::Result<()> {
    let mut run: Vec<Bytes> = Vec::new();
    for part in parts {
        match part {
            Part::Bytes(b) if !b.is_empty() => run.push(b.clone()),
            Part::Bytes(_) => {}
            Part::File(f) if f.len < sendfile_min => {
                if !f.is_empty() {
                    run.push(Bytes::from(f.read_to_vec()?));
                }
            }
            Part::File(f) => {
                write_all_vectored(wr, &run).await?;
                run.clear();
                send_file(wr, f).await?;
            }
        }
    }
    write_all_vectored(wr, &run).await
}

async fn write_all_vectored(wr: &mut OwnedWriteHalf, bufs: &[Bytes]) -> io::Result<()> {
    if let [one] = bufs {
        return wr.write_all(one).await;
    }
    let mut slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let batch = rest.len().min(MAX_IOVECS);
        let n = wr.write_vectored(&rest[..batch]).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

/// `sendfile` from the slice's file to the socket, waiting for writability between chunks.
async fn send_file(wr: &mut OwnedWriteHalf, slice: &FileSlice) -> io::Result<()> {
    let stream: &tokio::net::TcpStream = wr.as_ref();
    let mut pos = slice.position;
    let end = slice.position + slice.len as u64;
    while pos < end {
        if !slice.intact() {
            return Err(slice.truncated_error());
        }
        stream.writable().await?;
        let want = ((end - pos) as usize).min(SENDFILE_CHUNK);
        let sent = stream.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(stream, &slice.file.file, Some(&mut pos), want)
                .map_err(io::Error::from)
        });
        match sent {
            // End of file before the end of the slice: it shrank.
            Ok(0) => return Err(slice.truncated_error()),
            Ok(_) => {}
            Err(e)
                if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether an I/O error is a file that shrank under a slice.
pub fn is_truncation(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Truncated>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A connected pair on loopback: the sending half and the receiving stream.
    async fn pair() -> (OwnedWriteHalf, TcpStream, tokio::net::tcp::OwnedReadHalf) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (rd, wr) = server.into_split();
        (wr, client, rd)
    }

    fn file_with(data: &[u8]) -> Arc<SegmentFile> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(data).unwrap();
        SegmentFile::new(f)
    }

    fn pattern(len: usize, seed: u32) -> Vec<u8> {
        (0..len as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
            .collect()
    }

    #[tokio::test]
    async fn parts_arrive_byte_for_byte_around_the_threshold() {
        let data = pattern(3 << 20, 1);
        let file = file_with(&data);
        let mut parts = Vec::new();
        let mut want = Vec::new();
        let lens = [0, 1, 100, SENDFILE_MIN_BYTES - 1, SENDFILE_MIN_BYTES, 200_000, 2 << 20];
        for (i, &len) in lens.iter().enumerate() {
            let head = pattern(i * 37 % 300, i as u32);
            want.extend_from_slice(&head);
            parts.push(Part::Bytes(Bytes::from(head)));
            let at = (i * 4099) as u64;
            want.extend_from_slice(&data[at as usize..at as usize + len]);
            parts.push(Part::File(FileSlice::new(&file, at, len)));
        }
        // Many small in-memory parts in a row: more than one writev's worth.
        for i in 0..3000u32 {
            let b = pattern(5, i);
            want.extend_from_slice(&b);
            parts.push(Part::Bytes(Bytes::from(b)));
        }
        let (mut wr, mut client, _rd) = pair().await;
        let total = want.len();
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; total];
            client.read_exact(&mut got).await.unwrap();
            got
        });
        send_parts(&mut wr, &parts).await.unwrap();
        assert!(reader.await.unwrap() == want, "bytes differ");
    }

    #[tokio::test]
    async fn an_unlinked_file_is_still_sent_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        let data = pattern(1 << 20, 7);
        std::fs::write(&path, &data).unwrap();
        let file = SegmentFile::new(std::fs::File::open(&path).unwrap());
        let slice = FileSlice::new(&file, 0, data.len());
        drop(file);
        // Retention or a compaction swap deletes the segment while its slice is out.
        std::fs::remove_file(&path).unwrap();
        let (mut wr, mut client, _rd) = pair().await;
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        send_parts(&mut wr, &[Part::File(slice)]).await.unwrap();
        drop(wr);
        drop(_rd);
        assert!(reader.await.unwrap() == data);
    }

    #[tokio::test]
    async fn a_file_truncated_mid_send_fails_the_send() {
        // Larger than loopback's socket buffers, so the sender must wait for the reader.
        let len = 64 << 20;
        let f = tempfile::tempfile().unwrap();
        f.set_len(len as u64).unwrap();
        let file = SegmentFile::new(f);
        let slice = FileSlice::new(&file, 0, len);
        let (mut wr, mut client, rd) = pair().await;
        let sender = tokio::spawn(async move {
            let r = send_parts(&mut wr, &[Part::File(slice)]).await;
            drop(wr);
            drop(rd);
            r
        });
        let mut got = vec![0u8; 1 << 20];
        client.read_exact(&mut got).await.unwrap();
        // A follower truncates the segment while the response is going out.
        file.truncated();
        file.file().set_len(0).unwrap();
        let mut rest = Vec::new();
        let _ = client.read_to_end(&mut rest).await;
        let err = sender.await.unwrap().unwrap_err();
        assert!(is_truncation(&err), "{err}");
        assert!(got.len() + rest.len() < len, "the whole slice was sent after the truncation");
    }

    #[test]
    fn read_to_vec_is_exact_and_notices_a_shrink() {
        let data = pattern(100_000, 3);
        let file = file_with(&data);
        let slice = FileSlice::new(&file, 10, 50_000);
        let got = slice.read_to_vec().unwrap();
        assert_eq!(got.capacity(), 50_000);
        assert!(got[..] == data[10..50_010]);
        file.truncated();
        let err = slice.read_to_vec().unwrap_err();
        assert!(is_truncation(&err));
        let beyond = FileSlice::new(&file, 90_000, 20_000);
        assert!(is_truncation(&beyond.read_to_vec().unwrap_err()));
    }
}
