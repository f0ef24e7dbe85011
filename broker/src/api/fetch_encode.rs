//! The Fetch response as [`Part`]s: everything but the record sets encoded into one buffer of
//! exactly the right size, and each partition's record set left as a range of its log file, so
//! the connection sends it with `sendfile` instead of copying it through memory twice.
//!
//! The layout rests on three facts of the Fetch schema (v4–16): `records` is a partition's last
//! field before its tagged fields; the arrays around partitions carry element counts, not byte
//! sizes (the only sized container, the `node_endpoints` tag, holds no records), so a record
//! set's length shows only in its own prefix and in the frame size; and an empty record set
//! encodes as a fixed placeholder (`00 00 00 00` before v12, `01` from v12). Each partition is
//! encoded by `kafka-protocol` with the placeholder; a file-backed one then has its placeholder
//! (and its empty tag section, v12+) cut off and the real length written instead. The levels
//! above partitions are the crate's own encoding of the response and of each topic with no
//! partitions, split around the element count. The test at the bottom checks the result is
//! byte for byte the crate's encoding of the same response with the records in memory.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchResponse, ResponseHeader};
use kafka_protocol::protocol::Encodable;

use crate::zero_copy::{FileSlice, Part};

/// Encodes a size-prefixed Fetch response. `files` holds, for each partition in response order
/// (topic by topic), the records to send from a file; such a partition's `records` must be
/// `Some(empty)`.
pub fn encode(
    header: &ResponseHeader,
    header_version: i16,
    response: &FetchResponse,
    files: &[Option<FileSlice>],
    version: i16,
) -> anyhow::Result<Vec<Part>> {
    let file_extra: usize = files.iter().flatten().map(|f| records_len(f.len(), version)).sum();
    let in_memory = header.compute_size(header_version)? + response.compute_size(version)?;
    let frame = in_memory + file_extra;
    anyhow::ensure!(frame <= i32::MAX as usize, "Fetch response of {frame} bytes");
    let mut buf = BytesMut::with_capacity(4 + in_memory);
    buf.put_i32(frame as i32);
    header.encode(&mut buf, header_version)?;

    // The top level: its fields, then the topics, then its tagged fields.
    let mut shell = FetchResponse::default()
        .with_throttle_time_ms(response.throttle_time_ms)
        .with_error_code(response.error_code)
        .with_session_id(response.session_id);
    shell.node_endpoints = response.node_endpoints.clone();
    shell.unknown_tagged_fields = response.unknown_tagged_fields.clone();
    let before_topics = if version >= 7 { 10 } else { 4 };
    let (head, tail) = split_shell(&shell, before_topics, version)?;
    buf.put_slice(&head);
    put_count(&mut buf, response.responses.len(), version);

    let mut parts = Vec::new();
    let mut files = files.iter();
    for topic in &response.responses {
        let shell = FetchableTopicResponse::default()
            .with_topic(topic.topic.clone())
            .with_topic_id(topic.topic_id)
            .with_unknown_tagged_fields(topic.unknown_tagged_fields.clone());
        // The topic's name (a compact string from v12, a string before) or, from v13, its id.
        let name_len = topic.topic.len();
        let name = if version >= 13 {
            16
        } else if version >= 12 {
            varint_len(name_len as u32 + 1) + name_len
        } else {
            2 + name_len
        };
        let (head, tail) = split_shell(&shell, name, version)?;
        buf.put_slice(&head);
        put_count(&mut buf, topic.partitions.len(), version);
        for partition in &topic.partitions {
            match files.next().cloned().flatten() {
                Some(file) => put_file_backed(&mut buf, &mut parts, partition, file, version)?,
                None => partition.encode(&mut buf, version)?,
            }
        }
        buf.put_slice(&tail);
    }
    anyhow::ensure!(files.next().is_none(), "more record files than partitions");
    buf.put_slice(&tail);
    parts.push(Part::Bytes(buf.freeze()));
    debug_assert_eq!(parts.iter().map(Part::len).sum::<usize>(), 4 + frame);
    Ok(parts)
}

/// A partition whose records are `file`: its fields up to the records, the records' length,
/// then the file range as a part of its own.
fn put_file_backed(
    buf: &mut BytesMut,
    parts: &mut Vec<Part>,
    partition: &PartitionData,
    file: FileSlice,
    version: i16,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        partition.records.as_ref().is_some_and(|r| r.is_empty()),
        "partition {} has records both in memory and in a file",
        partition.partition_index
    );
    // A file-backed partition has no tagged fields (diverging epochs and leader hints come
    // without records), so its encoding ends with the placeholder and an empty tag section.
    let no_tags = partition.diverging_epoch == Default::default()
        && partition.current_leader == Default::default()
        && partition.snapshot_id == Default::default()
        && partition.unknown_tagged_fields.is_empty();
    anyhow::ensure!(
        version < 12 || no_tags,
        "partition {} has tagged fields and records in a file",
        partition.partition_index
    );
    partition.encode(buf, version)?;
    let placeholder = if version >= 12 { 2 } else { 4 };
    buf.truncate(buf.len() - placeholder);
    if version >= 12 {
        put_varint(buf, file.len() as u32 + 1);
    } else {
        buf.put_i32(file.len() as i32);
    }
    parts.push(Part::Bytes(buf.split().freeze()));
    parts.push(Part::File(file));
    if version >= 12 {
        // The partition's (empty) tagged fields.
        buf.put_u8(0);
    }
    Ok(())
}

/// Wire bytes a record set of `len` bytes adds over the empty placeholder.
fn records_len(len: usize, version: i16) -> usize {
    if version >= 12 {
        len + varint_len(len as u32 + 1) - 1
    } else {
        len
    }
}

fn varint_len(v: u32) -> usize {
    match v {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        0x4000..=0x1f_ffff => 3,
        0x20_0000..=0xfff_ffff => 4,
        _ => 5,
    }
}

fn put_varint(buf: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8(v as u8 | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// An array's element count.
fn put_count(buf: &mut BytesMut, n: usize, version: i16) {
    if version >= 12 {
        put_varint(buf, n as u32 + 1);
    } else {
        buf.put_i32(n as i32);
    }
}

/// A struct encoded with an empty array after `before` bytes of fields, split into what comes
/// before the array and what follows it.
fn split_shell<T: Encodable>(
    shell: &T,
    before: usize,
    version: i16,
) -> anyhow::Result<(bytes::Bytes, bytes::Bytes)> {
    let mut out = BytesMut::with_capacity(shell.compute_size(version)?);
    shell.encode(&mut out, version)?;
    let empty_array = if version >= 12 { 1 } else { 4 };
    let mut out = out.freeze();
    let head = out.split_to(before);
    let tail = out.split_off(empty_array);
    Ok((head, tail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, EpochEndOffset, LeaderIdAndEpoch, NodeEndpoint,
    };
    use kafka_protocol::messages::{BrokerId, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use proptest::prelude::*;
    use std::io::Write;

    /// The crate's own encoding of the response with every record set in memory.
    fn reference(header: &ResponseHeader, hv: i16, response: &FetchResponse, v: i16) -> Vec<u8> {
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header.encode(&mut buf, hv).unwrap();
        response.encode(&mut buf, v).unwrap();
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        buf.to_vec()
    }

    fn flatten(parts: &[Part]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in parts {
            match p {
                Part::Bytes(b) => out.extend_from_slice(b),
                Part::File(f) => out.extend(f.read_to_vec().unwrap()),
            }
        }
        out
    }

    /// One partition: (records length, in a file?, error, diverging, leader hint, aborted).
    type Spec = (usize, bool, bool, bool, bool, bool);

    fn case(v: i16, topics: Vec<Vec<Spec>>, endpoints: bool) {
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
        file.write_all(&data).unwrap();
        let file = crate::zero_copy::SegmentFile::new(file);
        let mut with_files = FetchResponse::default().with_session_id(if v >= 7 { 7 } else { 0 });
        with_files.throttle_time_ms = 3;
        let mut in_memory = with_files.clone();
        let mut files = Vec::new();
        let mut at = 0u64;
        for (t, parts) in topics.iter().enumerate() {
            let mut topic_f = FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_string(format!("topic-{t}"))))
                .with_topic_id(uuid::Uuid::from_u128(t as u128 + 1));
            let mut topic_m = topic_f.clone();
            for (i, &(len, in_file, error, diverging, hint, aborted)) in parts.iter().enumerate() {
                let mut p = PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_high_watermark(1000 + i as i64)
                    .with_last_stable_offset(900)
                    .with_log_start_offset(5)
                    .with_preferred_read_replica(BrokerId(-1))
                    .with_records(Some(Bytes::new()));
                if error {
                    p.error_code = 6;
                }
                if aborted {
                    p.aborted_transactions = Some(vec![AbortedTransaction::default()
                        .with_producer_id(kafka_protocol::messages::ProducerId(9))]);
                }
                let tagged = v >= 12 && (diverging || hint);
                if v >= 12 && diverging {
                    p.diverging_epoch = EpochEndOffset::default().with_epoch(3).with_end_offset(40);
                }
                if v >= 12 && hint {
                    p.current_leader = LeaderIdAndEpoch::default()
                        .with_leader_id(BrokerId(2))
                        .with_leader_epoch(4);
                }
                let slice = crate::zero_copy::FileSlice::new(&file, at, len);
                let mut m = p.clone();
                m.records = Some(Bytes::copy_from_slice(&data[at as usize..at as usize + len]));
                at = (at + len as u64) % 1000;
                topic_m.partitions.push(m);
                if in_file && !tagged {
                    files.push(Some(slice));
                    topic_f.partitions.push(p);
                } else {
                    files.push(None);
                    topic_f.partitions.push(topic_m.partitions.last().unwrap().clone());
                }
            }
            with_files.responses.push(topic_f);
            in_memory.responses.push(topic_m);
        }
        if v >= 16 && endpoints {
            let e = NodeEndpoint::default()
                .with_node_id(BrokerId(2))
                .with_host(StrBytes::from_static_str("b2"))
                .with_port(9092);
            with_files.node_endpoints = vec![e.clone()];
            in_memory.node_endpoints = vec![e];
        }
        let header = ResponseHeader::default().with_correlation_id(42);
        let hv = if v >= 12 { 1 } else { 0 };
        let parts = encode(&header, hv, &with_files, &files, v).unwrap();
        assert!(flatten(&parts) == reference(&header, hv, &in_memory, v), "v{v}: bytes differ");
        // And a client's decoder reads it back.
        let mut b = Bytes::from(flatten(&parts));
        bytes::Buf::advance(&mut b, 4);
        <ResponseHeader as kafka_protocol::protocol::Decodable>::decode(&mut b, hv).unwrap();
        let decoded =
            <FetchResponse as kafka_protocol::protocol::Decodable>::decode(&mut b, v).unwrap();
        assert_eq!(decoded.responses.len(), in_memory.responses.len());
        assert!(!bytes::Buf::has_remaining(&b));
    }

    #[test]
    fn varint_edges_and_every_version() {
        for v in 4..=16 {
            let lens = [0, 1, 126, 127, 128, 16_383, 16_384, 65_000];
            let parts: Vec<Spec> =
                lens.iter().map(|&l| (l, true, false, false, false, false)).collect();
            case(v, vec![parts.clone(), vec![], parts], true);
            case(v, vec![], false);
        }
    }

    proptest! {
        #[test]
        fn parts_equal_the_crates_encoding(
            v in 4i16..=16,
            topics in prop::collection::vec(
                prop::collection::vec(
                    (0usize..20_000, any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
                    0..5),
                0..4),
            endpoints in any::<bool>(),
        ) {
            case(v, topics, endpoints);
        }
    }
}
