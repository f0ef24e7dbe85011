//! Record-batch compression codecs: the byte formats Kafka clients put in a v2 batch's records
//! section, and the bounded decompression the broker needs to look inside batches.
//!
//! This module owns the exact wire framing of each codec (attribute bits 0-2 of a batch):
//!
//! - **gzip**: a gzip stream (RFC 1952), as `java.util.zip.GZIPOutputStream` writes it.
//! - **snappy**: Kafka's Java producer writes the *xerial* framing of `SnappyOutputStream`: the
//!   8-byte magic `0x82 "SNAPPY" 0x00`, two big-endian i32 versions (1 and 1), then repeated
//!   `[i32 big-endian compressed length][raw snappy block]`, each block holding at most 32 KiB
//!   of input. librdkafka and some other clients write plain *raw* snappy instead; like
//!   xerial's `SnappyInputStream`, [`decompress`] falls back to raw snappy when the magic is
//!   absent, and it accepts concatenated xerial streams (a second header where a block length
//!   is expected). [`compress`] always writes the xerial framing.
//! - **lz4**: the LZ4 frame format, as Kafka's `KafkaLZ4BlockOutputStream` writes it (64 KiB
//!   independent blocks, no block or content checksum).
//! - **zstd**: a standard zstd frame (level 3, like Kafka's default).
//!
//! Decompression is always bounded: the output may not exceed the caller's `limit`, and the
//! codecs are driven through readers capped at `limit + 1` bytes (snappy checks each block's
//! declared length before allocating), so a small "decompression bomb" cannot make the broker
//! allocate more than the limit. Malformed input is a [`LogError::Decompression`], never a
//! panic.

use std::io::{BufRead, BufReader, Read, Write};

use super::batch::Compression;
use super::LogError;

/// The magic that starts a xerial snappy stream.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic, then the stream version and the minimum compatible version (both i32 big-endian).
const XERIAL_HEADER_SIZE: usize = 16;
/// The version pair Kafka's producer (xerial snappy-java 1.1.x) writes.
const XERIAL_VERSION: i32 = 1;
const XERIAL_COMPATIBLE_VERSION: i32 = 1;
/// Uncompressed bytes per xerial block: `SnappyOutputStream`'s default.
const XERIAL_BLOCK_SIZE: usize = 32 * 1024;
/// zstd level used when the broker recompresses (Kafka's `compression.zstd.level` default).
const ZSTD_LEVEL: i32 = 3;
/// LZ4 frame compression level: 0 is LZ4's fast mode, what Kafka used before 3.8 made the level
/// configurable. The cleaner recompresses in the background, so speed wins over ratio.
const LZ4_LEVEL: u32 = 0;

fn decompression_error(codec: Compression, detail: impl std::fmt::Display) -> LogError {
    LogError::Decompression(format!("{codec:?}: {detail}"))
}

fn limit_error(codec: Compression, limit: usize) -> LogError {
    LogError::Decompression(format!(
        "{codec:?}: decompressed size exceeds the limit of {limit} bytes"
    ))
}

/// Decompresses a batch's records section written with `codec`.
///
/// Returns [`LogError::Decompression`] if the input is malformed or truncated, or if the output
/// would be longer than `limit` bytes. `Compression::None` returns a copy of the input (still
/// subject to `limit`).
pub fn decompress(codec: Compression, input: &[u8], limit: usize) -> Result<Vec<u8>, LogError> {
    if codec == Compression::None {
        if input.len() > limit {
            return Err(limit_error(codec, limit));
        }
        return Ok(input.to_vec());
    }
    // The streaming decoder read to its end, capped one byte past the limit to tell "too long"
    // from "exactly the limit".
    let mut reader = RecordsReader::new(codec, input, limit)?;
    // A guess at the output size that never exceeds the limit: records usually compress 2-4x.
    let mut out = Vec::with_capacity(input.len().saturating_mul(4).min(limit));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    (&mut reader).take(cap).read_to_end(&mut out).map_err(|e| decompression_error(codec, e))?;
    if out.len() > limit {
        return Err(limit_error(codec, limit));
    }
    reader.finish()?;
    Ok(out)
}

/// Buffer of a streaming decoder: what [`RecordsReader`] holds of decompressed records.
const STREAM_BUFFER: usize = 16 * 1024;

/// A records section read as a stream, decompressing as it goes: memory is a small buffer plus
/// the codec's own state (a block or window), never the whole decompressed section. A
/// decompression failure surfaces as an `io::Error` from a read.
pub enum RecordsReader<'a> {
    None(&'a [u8]),
    Gzip(BufReader<flate2::bufread::GzDecoder<&'a [u8]>>),
    Snappy(SnappyReader<'a>),
    Lz4(BufReader<lz4::Decoder<&'a [u8]>>),
    Zstd(BufReader<zstd::stream::read::Decoder<'static, &'a [u8]>>),
}

impl<'a> RecordsReader<'a> {
    /// Streams `input`, written with `codec`. `limit` bounds a single snappy block (raw snappy,
    /// as librdkafka writes it, is one block for the whole section).
    pub fn new(codec: Compression, input: &'a [u8], limit: usize) -> Result<Self, LogError> {
        Ok(match codec {
            Compression::None => RecordsReader::None(input),
            Compression::Gzip => RecordsReader::Gzip(BufReader::with_capacity(
                STREAM_BUFFER,
                flate2::bufread::GzDecoder::new(input),
            )),
            Compression::Snappy => RecordsReader::Snappy(SnappyReader::new(input, limit)?),
            Compression::Lz4 => RecordsReader::Lz4(BufReader::with_capacity(
                STREAM_BUFFER,
                lz4::Decoder::new(input).map_err(|e| decompression_error(codec, e))?,
            )),
            Compression::Zstd => RecordsReader::Zstd(BufReader::with_capacity(
                STREAM_BUFFER,
                zstd::stream::read::Decoder::with_buffer(input)
                    .map_err(|e| decompression_error(codec, e))?,
            )),
        })
    }

    /// Checks, once the stream is read to its end, that the codec's framing ended where it
    /// should: the LZ4 frame decoder reports a clean end of input even when the frame was cut.
    pub fn finish(self) -> Result<(), LogError> {
        if let RecordsReader::Lz4(r) = self {
            let (_, finished) = r.into_inner().finish();
            finished.map_err(|_| decompression_error(Compression::Lz4, "truncated LZ4 frame"))?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for RecordsReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let codec = match self {
            RecordsReader::None(_) => Compression::None,
            RecordsReader::Gzip(_) => Compression::Gzip,
            RecordsReader::Snappy(_) => Compression::Snappy,
            RecordsReader::Lz4(_) => Compression::Lz4,
            RecordsReader::Zstd(_) => Compression::Zstd,
        };
        f.debug_tuple("RecordsReader").field(&codec).finish()
    }
}

impl Read for RecordsReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        read_through_buffer(self, out)
    }
}

/// `Read::read` of a reader that is at heart a `BufRead`: copy what its buffer holds.
fn read_through_buffer(r: &mut impl BufRead, out: &mut [u8]) -> std::io::Result<usize> {
    let n = {
        let buf = r.fill_buf()?;
        let n = buf.len().min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        n
    };
    r.consume(n);
    Ok(n)
}

impl BufRead for RecordsReader<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        match self {
            RecordsReader::None(r) => r.fill_buf(),
            RecordsReader::Gzip(r) => r.fill_buf(),
            RecordsReader::Snappy(r) => r.fill_buf(),
            RecordsReader::Lz4(r) => r.fill_buf(),
            RecordsReader::Zstd(r) => r.fill_buf(),
        }
    }
    fn consume(&mut self, n: usize) {
        match self {
            RecordsReader::None(r) => r.consume(n),
            RecordsReader::Gzip(r) => r.consume(n),
            RecordsReader::Snappy(r) => r.consume(n),
            RecordsReader::Lz4(r) => r.consume(n),
            RecordsReader::Zstd(r) => r.consume(n),
        }
    }
}

/// Snappy as a stream: xerial blocks one at a time (32 KiB each from Kafka's producer), or a
/// raw snappy section as one block, each bounded by the limit before it is allocated.
#[derive(Debug)]
pub struct SnappyReader<'a> {
    input: &'a [u8],
    pos: usize,
    xerial: bool,
    block: Vec<u8>,
    block_pos: usize,
    limit: usize,
}

impl<'a> SnappyReader<'a> {
    fn new(input: &'a [u8], limit: usize) -> Result<Self, LogError> {
        let xerial =
            input.len() >= XERIAL_HEADER_SIZE && input[..XERIAL_MAGIC.len()] == XERIAL_MAGIC;
        let pos = if xerial { check_xerial_header(input)? } else { 0 };
        Ok(SnappyReader { input, pos, xerial, block: Vec::new(), block_pos: 0, limit })
    }

    /// Decompresses the next block into `block`; false at the end of the input.
    fn next_block(&mut self) -> Result<bool, LogError> {
        let codec = Compression::Snappy;
        self.block.clear();
        self.block_pos = 0;
        if !self.xerial {
            // Raw snappy: the whole section is one block (empty input is not a valid block).
            if self.pos == 0 {
                self.pos = self.input.len().max(1);
                append_raw_snappy(self.input, &mut self.block, self.limit)?;
                return Ok(!self.block.is_empty());
            }
            return Ok(false);
        }
        while self.pos < self.input.len() {
            let rest = &self.input[self.pos..];
            let word = rest
                .get(..4)
                .ok_or_else(|| decompression_error(codec, "truncated xerial block length"))?;
            if word == &XERIAL_MAGIC[..4] {
                // Concatenated stream: a new header where a block length was expected.
                self.pos += check_xerial_header(rest)?;
                continue;
            }
            let len = i32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            let len = usize::try_from(len).map_err(|_| {
                decompression_error(codec, format!("negative xerial block length {len}"))
            })?;
            let block = rest
                .get(4..)
                .and_then(|r| r.get(..len))
                .ok_or_else(|| decompression_error(codec, "xerial block overruns the input"))?;
            append_raw_snappy(block, &mut self.block, self.limit)?;
            self.pos += 4 + len;
            if !self.block.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        read_through_buffer(self, out)
    }
}

impl BufRead for SnappyReader<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.block_pos >= self.block.len() {
            self.next_block().map_err(std::io::Error::other)?;
        }
        Ok(&self.block[self.block_pos..])
    }
    fn consume(&mut self, n: usize) {
        self.block_pos = (self.block_pos + n).min(self.block.len());
    }
}

/// Compresses a records section with `codec`, in the framing Kafka's Java producer writes.
///
/// In-memory compression only fails on internal codec errors, reported as
/// [`LogError::Decompression`] (the storage layer's codec error).
pub fn compress(codec: Compression, input: &[u8]) -> Result<Vec<u8>, LogError> {
    if codec == Compression::None {
        return Ok(input.to_vec());
    }
    let mut c = Compressor::new(codec, input.len() / 2 + 64)?;
    c.write_all(input).map_err(|e| compression_error(codec, &e))?;
    c.finish()
}

fn compression_error(codec: Compression, e: &dyn std::fmt::Display) -> LogError {
    LogError::Decompression(format!("{codec:?}: compression failed: {e}"))
}

/// A records section being compressed as it is written (the cleaner copies retained records
/// into one without holding them uncompressed), in the framing [`compress`] documents.
pub enum Compressor {
    None(Vec<u8>),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Snappy(Box<SnappyWriter>),
    Lz4(lz4::Encoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Compressor").field(&self.codec()).finish()
    }
}

impl Compressor {
    /// A compressor whose output buffer starts at `capacity` bytes, at the codec's default
    /// level (Kafka's defaults: gzip 6, lz4 fast mode here, zstd 3).
    pub fn new(codec: Compression, capacity: usize) -> Result<Self, LogError> {
        Self::with_level(codec, None, capacity)
    }

    /// Like [`new`](Self::new) at `level` (`compression.<codec>.level`; gzip's -1 is the
    /// default; snappy has no levels).
    pub fn with_level(
        codec: Compression,
        level: Option<i32>,
        capacity: usize,
    ) -> Result<Self, LogError> {
        let out = Vec::with_capacity(capacity);
        let fail = |e: std::io::Error| compression_error(codec, &e);
        Ok(match codec {
            Compression::None => Compressor::None(out),
            Compression::Gzip => {
                let level = match level {
                    Some(l @ 1..=9) => flate2::Compression::new(l as u32),
                    _ => flate2::Compression::default(),
                };
                Compressor::Gzip(flate2::write::GzEncoder::new(out, level))
            }
            Compression::Snappy => Compressor::Snappy(Box::new(SnappyWriter::new(out))),
            Compression::Lz4 => Compressor::Lz4(
                lz4::EncoderBuilder::new()
                    .block_size(lz4::BlockSize::Max64KB)
                    .block_mode(lz4::BlockMode::Independent)
                    .block_checksum(lz4::liblz4::BlockChecksum::NoBlockChecksum)
                    .checksum(lz4::ContentChecksum::NoChecksum)
                    .level(level.map_or(LZ4_LEVEL, |l| l.max(0) as u32))
                    .build(out)
                    .map_err(fail)?,
            ),
            Compression::Zstd => Compressor::Zstd(
                zstd::stream::write::Encoder::new(out, level.unwrap_or(ZSTD_LEVEL))
                    .map_err(fail)?,
            ),
        })
    }

    pub fn codec(&self) -> Compression {
        match self {
            Compressor::None(_) => Compression::None,
            Compressor::Gzip(_) => Compression::Gzip,
            Compressor::Snappy(_) => Compression::Snappy,
            Compressor::Lz4(_) => Compression::Lz4,
            Compressor::Zstd(_) => Compression::Zstd,
        }
    }

    /// Bytes of compressed output so far (the codec may hold more it has not written yet).
    pub fn output_len(&self) -> usize {
        match self {
            Compressor::None(w) => w.len(),
            Compressor::Gzip(w) => w.get_ref().len(),
            Compressor::Snappy(w) => w.out.len() + w.block.len(),
            Compressor::Lz4(w) => w.writer().len(),
            Compressor::Zstd(w) => w.get_ref().len(),
        }
    }

    /// Ends the stream and returns the compressed section.
    pub fn finish(self) -> Result<Vec<u8>, LogError> {
        let codec = self.codec();
        let fail = |e: std::io::Error| compression_error(codec, &e);
        match self {
            Compressor::None(out) => Ok(out),
            Compressor::Gzip(e) => e.finish().map_err(fail),
            Compressor::Snappy(w) => w.finish().map_err(fail),
            Compressor::Lz4(e) => {
                let (out, result) = e.finish();
                result.map_err(fail)?;
                Ok(out)
            }
            Compressor::Zstd(e) => e.finish().map_err(fail),
        }
    }
}

impl Write for Compressor {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Compressor::None(w) => w.write(buf),
            Compressor::Gzip(w) => w.write(buf),
            Compressor::Snappy(w) => w.write(buf),
            Compressor::Lz4(w) => w.write(buf),
            Compressor::Zstd(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Xerial snappy framing written block by block: input is gathered into 32 KiB blocks, each
/// compressed and appended with its length.
pub struct SnappyWriter {
    out: Vec<u8>,
    block: Vec<u8>,
    encoder: snap::raw::Encoder,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for SnappyWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnappyWriter").field("out", &self.out.len()).finish()
    }
}

impl SnappyWriter {
    fn new(mut out: Vec<u8>) -> Self {
        out.extend_from_slice(&XERIAL_MAGIC);
        out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
        out.extend_from_slice(&XERIAL_COMPATIBLE_VERSION.to_be_bytes());
        SnappyWriter {
            out,
            block: Vec::with_capacity(XERIAL_BLOCK_SIZE),
            encoder: snap::raw::Encoder::new(),
            scratch: vec![0u8; snap::raw::max_compress_len(XERIAL_BLOCK_SIZE)],
        }
    }

    fn flush_block(&mut self) -> std::io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let n =
            self.encoder.compress(&self.block, &mut self.scratch).map_err(std::io::Error::other)?;
        // n <= max_compress_len(32 KiB), far below i32::MAX.
        let len = i32::try_from(n).map_err(std::io::Error::other)?;
        self.out.extend_from_slice(&len.to_be_bytes());
        self.out.extend_from_slice(&self.scratch[..n]);
        self.block.clear();
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<Vec<u8>> {
        self.flush_block()?;
        Ok(self.out)
    }
}

impl Write for SnappyWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let take = buf.len().min(XERIAL_BLOCK_SIZE - self.block.len());
        self.block.extend_from_slice(&buf[..take]);
        if self.block.len() == XERIAL_BLOCK_SIZE {
            self.flush_block()?;
        }
        Ok(take)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Validates a xerial header at the start of `input`, returning its size.
fn check_xerial_header(input: &[u8]) -> Result<usize, LogError> {
    let codec = Compression::Snappy;
    let header = input
        .get(..XERIAL_HEADER_SIZE)
        .ok_or_else(|| decompression_error(codec, "truncated xerial header"))?;
    if header[..XERIAL_MAGIC.len()] != XERIAL_MAGIC {
        return Err(decompression_error(codec, "bad xerial magic"));
    }
    let compatible = i32::from_be_bytes([header[12], header[13], header[14], header[15]]);
    if compatible < XERIAL_COMPATIBLE_VERSION {
        return Err(decompression_error(
            codec,
            format!("unsupported xerial compatible version {compatible}"),
        ));
    }
    Ok(XERIAL_HEADER_SIZE)
}

/// Decompresses one raw snappy block onto `out`, checking its declared length against what is
/// left of `limit` before allocating.
fn append_raw_snappy(block: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), LogError> {
    let codec = Compression::Snappy;
    let len = snap::raw::decompress_len(block).map_err(|e| decompression_error(codec, e))?;
    let start = out.len();
    let end = start
        .checked_add(len)
        .filter(|&end| end <= limit)
        .ok_or_else(|| limit_error(codec, limit))?;
    out.resize(end, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| decompression_error(codec, e))?;
    if written != len {
        return Err(decompression_error(codec, "snappy block shorter than its declared length"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::compression::{self as kp, Compressor, Decompressor};

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    const COMPRESSED: [Compression; 4] =
        [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
    const BIG_LIMIT: usize = 64 << 20;

    /// Deterministic, moderately compressible bytes (text-like, with repetition and noise).
    fn sample(len: usize) -> Vec<u8> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let words: [&[u8]; 6] = [b"offset ", b"key-", b"value ", b"sluice ", b"\x00\x01", b"tx "];
        let mut out = Vec::with_capacity(len + 16);
        while out.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Noise for a third of the steps, a word otherwise.
            match state % 6 {
                0 | 3 => out.extend_from_slice(&state.to_le_bytes()[..3]),
                w => out.extend_from_slice(words[w as usize]),
            }
        }
        out.truncate(len);
        out
    }

    fn kp_compress(codec: Compression, input: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        let fill = |buf: &mut BytesMut| {
            buf.extend_from_slice(input);
            Ok(())
        };
        match codec {
            Compression::None => kp::None::compress(&mut out, fill),
            Compression::Gzip => kp::Gzip::compress(&mut out, fill),
            Compression::Snappy => kp::Snappy::compress(&mut out, fill),
            Compression::Lz4 => kp::Lz4::compress(&mut out, fill),
            Compression::Zstd => kp::Zstd::compress(&mut out, fill),
        }
        .unwrap();
        out.to_vec()
    }

    fn kp_decompress(codec: Compression, input: &[u8]) -> Vec<u8> {
        let mut buf = Bytes::copy_from_slice(input);
        let take = |b: &mut Bytes| Ok(b.to_vec());
        match codec {
            Compression::None => kp::None::decompress(&mut buf, take),
            Compression::Gzip => kp::Gzip::decompress(&mut buf, take),
            Compression::Snappy => kp::Snappy::decompress(&mut buf, take),
            Compression::Lz4 => kp::Lz4::decompress(&mut buf, take),
            Compression::Zstd => kp::Zstd::decompress(&mut buf, take),
        }
        .unwrap()
    }

    #[test]
    fn round_trip_every_codec_empty_small_and_large() {
        for codec in ALL {
            for len in [0, 1, 100, 40_000, (1 << 20) + 12_345] {
                let input = sample(len);
                let packed = compress(codec, &input).unwrap();
                if codec != Compression::None && len >= 40_000 {
                    assert!(packed.len() < input.len(), "{codec:?} did not compress {len} bytes");
                }
                let unpacked = decompress(codec, &packed, BIG_LIMIT).unwrap();
                assert!(unpacked == input, "{codec:?} round trip of {len} bytes differs");
                // The limit is inclusive: exactly `len` bytes are allowed.
                assert_eq!(decompress(codec, &packed, len).unwrap().len(), len);
            }
        }
    }

    #[test]
    fn interoperates_with_kafka_protocol_codecs() {
        for codec in ALL {
            for len in [1, 5_000, 200_000] {
                let input = sample(len);
                let ours = compress(codec, &input).unwrap();
                assert!(kp_decompress(codec, &ours) == input, "{codec:?}: theirs cannot read ours");
                let theirs = kp_compress(codec, &input);
                let read = decompress(codec, &theirs, BIG_LIMIT).unwrap();
                assert!(read == input, "{codec:?}: we cannot read theirs");
            }
        }
    }

    #[test]
    fn snappy_writes_xerial_framing_in_32k_blocks() {
        let input = sample(100_000);
        let packed = compress(Compression::Snappy, &input).unwrap();
        assert_eq!(&packed[..8], &XERIAL_MAGIC);
        assert_eq!(&packed[8..16], &[0, 0, 0, 1, 0, 0, 0, 1]);
        let mut pos = 16;
        let mut blocks = Vec::new();
        while pos < packed.len() {
            let len = i32::from_be_bytes(packed[pos..pos + 4].try_into().unwrap()) as usize;
            let block = &packed[pos + 4..pos + 4 + len];
            blocks.push(snap::raw::Decoder::new().decompress_vec(block).unwrap());
            pos += 4 + len;
        }
        assert_eq!(pos, packed.len());
        assert_eq!(blocks.iter().map(Vec::len).collect::<Vec<_>>(), [32768, 32768, 32768, 1696]);
        assert!(blocks.concat() == input);
        // Empty input is a bare header, which reads back as nothing.
        assert_eq!(compress(Compression::Snappy, &[]).unwrap().len(), XERIAL_HEADER_SIZE);
    }

    #[test]
    fn raw_snappy_is_accepted() {
        for len in [1, 15, 16, 17, 1000, 300_000] {
            let input = sample(len);
            let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
            assert_ne!(raw.get(..8), Some(&XERIAL_MAGIC[..]));
            let out = decompress(Compression::Snappy, &raw, BIG_LIMIT).unwrap();
            assert!(out == input, "raw snappy of {len} bytes");
        }
    }

    #[test]
    fn concatenated_xerial_streams_are_accepted() {
        let (a, b) = (sample(40_000), sample(777));
        let mut both = compress(Compression::Snappy, &a).unwrap();
        both.extend_from_slice(&compress(Compression::Snappy, &b).unwrap());
        let out = decompress(Compression::Snappy, &both, BIG_LIMIT).unwrap();
        assert!(out == [a, b].concat());
    }

    #[test]
    fn malformed_xerial_framing_is_an_error() {
        let good = compress(Compression::Snappy, &sample(1000)).unwrap();
        let mut negative = good.clone();
        negative[16..20].copy_from_slice(&(-3i32).to_be_bytes());
        let mut overlong = good.clone();
        overlong[16..20].copy_from_slice(&(i32::MAX).to_be_bytes());
        let mut dangling = good.clone();
        dangling.extend_from_slice(&[0, 0]);
        let mut bad_version = good.clone();
        bad_version[12..16].copy_from_slice(&0i32.to_be_bytes());
        let mut bad_second_header = good.clone();
        bad_second_header.extend_from_slice(&XERIAL_MAGIC[..4]);
        bad_second_header.extend_from_slice(&[0, 0, 0]);
        for (name, input) in [
            ("negative block length", negative),
            ("block length past the end", overlong),
            ("dangling length bytes", dangling),
            ("incompatible version", bad_version),
            ("truncated second header", bad_second_header),
        ] {
            let r = decompress(Compression::Snappy, &input, BIG_LIMIT);
            assert!(matches!(r, Err(LogError::Decompression(_))), "{name}: {r:?}");
        }
    }

    #[test]
    fn truncated_and_garbage_input_is_an_error() {
        let input = sample(50_000);
        for codec in COMPRESSED {
            let packed = compress(codec, &input).unwrap();
            let mut cuts: Vec<usize> = (0..packed.len().min(64)).collect();
            cuts.extend([packed.len() / 3, packed.len() / 2, packed.len() - 4, packed.len() - 1]);
            if codec == Compression::Snappy {
                // A xerial stream cut at a block boundary is well-formed (as in Java); the batch
                // record count catches such a cut. The header alone is one such boundary.
                cuts.retain(|&cut| cut != XERIAL_HEADER_SIZE);
            }
            for cut in cuts {
                let r = decompress(codec, &packed[..cut], BIG_LIMIT);
                assert!(
                    matches!(r, Err(LogError::Decompression(_))),
                    "{codec:?} accepted input truncated to {cut} of {} bytes",
                    packed.len()
                );
            }
            for garbage in [
                &b"this is certainly not compressed data, just some ascii"[..],
                &[0xff; 64][..],
                &[0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07][..],
            ] {
                let r = decompress(codec, garbage, BIG_LIMIT);
                assert!(matches!(r, Err(LogError::Decompression(_))), "{codec:?} accepted garbage");
            }
        }
    }

    #[test]
    fn corrupted_bytes_never_panic() {
        let input = sample(3_000);
        for codec in COMPRESSED {
            let packed = compress(codec, &input).unwrap();
            for i in 0..packed.len() {
                for mask in [0x01, 0x80, 0xff] {
                    let mut bad = packed.clone();
                    bad[i] ^= mask;
                    if let Ok(out) = decompress(codec, &bad, 10_000) {
                        assert!(out.len() <= 10_000);
                    }
                }
            }
        }
    }

    #[test]
    fn limit_is_enforced_for_every_codec() {
        let input = sample(100_000);
        for codec in ALL {
            let packed = compress(codec, &input).unwrap();
            assert_eq!(decompress(codec, &packed, 100_000).unwrap().len(), 100_000);
            for limit in [0, 1, 32_768, 99_999] {
                let r = decompress(codec, &packed, limit);
                assert!(matches!(r, Err(LogError::Decompression(_))), "{codec:?} limit {limit}");
            }
        }
        // Raw snappy too: the declared length is checked before allocating.
        let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
        assert!(decompress(Compression::Snappy, &raw, 99_999).is_err());
    }

    #[test]
    fn decompression_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 32 << 20];
        for codec in COMPRESSED {
            let bomb = compress(codec, &zeros).unwrap();
            assert!(bomb.len() < 2 << 20, "{codec:?} bomb is {} bytes", bomb.len());
            let r = decompress(codec, &bomb, 1 << 20);
            assert!(matches!(r, Err(LogError::Decompression(_))), "{codec:?}");
        }
        // A raw snappy block may declare a huge length in a few bytes; nothing is allocated.
        let mut lying = Vec::new();
        let mut n: u64 = u32::MAX as u64;
        while n >= 0x80 {
            lying.push((n as u8) | 0x80);
            n >>= 7;
        }
        lying.push(n as u8);
        lying.extend_from_slice(&[0; 8]);
        assert!(decompress(Compression::Snappy, &lying, 1 << 20).is_err());
    }

    #[test]
    fn none_copies_input_within_the_limit() {
        assert_eq!(decompress(Compression::None, b"abc", 3).unwrap(), b"abc");
        assert!(decompress(Compression::None, b"abc", 2).is_err());
        assert_eq!(compress(Compression::None, b"abc").unwrap(), b"abc");
    }
}
