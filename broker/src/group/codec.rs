//! Kafka's record layouts in `__consumer_offsets`, byte for byte.
//!
//! Every record's key and value start with an `int16` version. Keys (non-flexible, strings as
//! `int16` length + UTF-8):
//!
//! ```text
//! key version 0 or 1  OffsetCommitKey    group string, topic string, partition int32
//! key version 2       GroupMetadataKey   group string
//! ```
//!
//! Kafka writes offset commit keys with version 1; 0 is the pre-0.10 form of the same layout.
//! Newer Kafka uses key versions 3 and up for KIP-848 consumer groups, share groups and
//! streams groups; Sluice has none of those and skips them when loading ([`RecordKey::Other`]).
//!
//! `OffsetCommitValue` versions 0–4: `offset int64`, `leaderEpoch int32` (v3+), `metadata
//! string`, `commitTimestamp int64`, `expireTimestamp int64` (v1 only). `GroupMetadataValue`
//! versions 0–4: `protocolType string`, `generation int32`, `protocol nullable string`,
//! `leader nullable string`, `currentStateTimestamp int64` (v2+), then the members, each
//! `memberId`, `groupInstanceId` (nullable, v3+), `clientId`, `clientHost`, `rebalanceTimeout
//! int32` (v1+), `sessionTimeout int32`, `subscription bytes`, `assignment bytes`. Version 4 of
//! both values is the flexible encoding (compact strings, arrays and bytes as unsigned varint
//! length + 1, tagged fields after each struct). Like Kafka, Sluice writes offset commits as
//! value v3 (v1 when the commit carries an explicit expire timestamp) and group metadata as
//! value v3, and reads every version. A `null` value is a tombstone.

use bytes::Bytes;

/// Why a record of `__consumer_offsets` could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("record is truncated")]
    Truncated,
    #[error("unsupported {0} version {1}")]
    UnsupportedVersion(&'static str, i16),
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// Key version of offset commits as Kafka writes them.
pub const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
/// Key version of group metadata.
pub const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// Value version Kafka writes for offset commits without an expire timestamp.
pub const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
/// Value version Kafka writes for offset commits that carry an expire timestamp.
pub const OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRY: i16 = 1;
/// Value version Kafka writes for group metadata.
pub const GROUP_METADATA_VALUE_VERSION: i16 = 3;

/// The key of a `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    /// A committed offset of one partition (key versions 0 and 1).
    OffsetCommit { group: String, topic: String, partition: i32 },
    /// A group's membership and assignment (key version 2).
    GroupMetadata { group: String },
    /// A record type Sluice does not use (KIP-848 and share groups); holds the key version.
    Other(i16),
}

/// The value of an offset commit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    pub offset: i64,
    /// -1 when unknown (and always before value v3).
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// -1 when absent; only value v1 stores it.
    pub expire_timestamp: i64,
}

/// One member in a group metadata record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Value v0 has no rebalance timeout; like Kafka, the session timeout stands in for it.
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    /// The member's metadata for the group's selected protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// The value of a group metadata record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// When the group last changed state (ms), -1 when absent (before value v2).
    pub current_state_timestamp: i64,
    pub members: Vec<MemberMetadata>,
}

// ---------------------------------------------------------------------------------------------
// Writing.

struct Writer {
    buf: Vec<u8>,
    flexible: bool,
}

impl Writer {
    fn new(version: i16, flexible: bool) -> Self {
        let mut w = Writer { buf: Vec::with_capacity(64), flexible };
        w.i16(version);
        w
    }
    fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }
    /// A length prefix: int16 (strings) or int32 (bytes, arrays) when not flexible, unsigned
    /// varint of length + 1 when flexible; `None` is null.
    fn len(&mut self, len: Option<usize>, wide: bool) {
        match (self.flexible, len) {
            (true, None) => self.uvarint(0),
            (true, Some(n)) => self.uvarint(n as u64 + 1),
            (false, None) if wide => self.i32(-1),
            (false, None) => self.i16(-1),
            (false, Some(n)) if wide => self.i32(n as i32),
            (false, Some(n)) => self.i16(n as i16),
        }
    }
    fn string(&mut self, s: &str) {
        self.nullable_string(Some(s));
    }
    fn nullable_string(&mut self, s: Option<&str>) {
        self.len(s.map(str::len), false);
        if let Some(s) = s {
            self.buf.extend_from_slice(s.as_bytes());
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(Some(b.len()), true);
        self.buf.extend_from_slice(b);
    }
    fn array_len(&mut self, n: usize) {
        self.len(Some(n), true);
    }
    /// The (empty) tagged-field section that ends every flexible struct.
    fn tagged_fields(&mut self) {
        if self.flexible {
            self.uvarint(0);
        }
    }
}

/// Encodes a key with the version Kafka writes (1 for offset commits, 2 for group metadata).
pub fn encode_key(key: &RecordKey) -> Vec<u8> {
    match key {
        RecordKey::OffsetCommit { group, topic, partition } => {
            let mut w = Writer::new(OFFSET_COMMIT_KEY_VERSION, false);
            w.string(group);
            w.string(topic);
            w.i32(*partition);
            w.buf
        }
        RecordKey::GroupMetadata { group } => {
            let mut w = Writer::new(GROUP_METADATA_KEY_VERSION, false);
            w.string(group);
            w.buf
        }
        RecordKey::Other(version) => version.to_be_bytes().to_vec(),
    }
}

/// Encodes an offset commit value with `version` (0–4).
pub fn encode_offset_commit(v: &OffsetCommitValue, version: i16) -> Result<Vec<u8>, CodecError> {
    if !(0..=4).contains(&version) {
        return Err(CodecError::UnsupportedVersion("offset commit value", version));
    }
    let mut w = Writer::new(version, version >= 4);
    w.i64(v.offset);
    if version >= 3 {
        w.i32(v.leader_epoch);
    }
    w.string(&v.metadata);
    w.i64(v.commit_timestamp);
    if version == 1 {
        w.i64(v.expire_timestamp);
    }
    w.tagged_fields();
    Ok(w.buf)
}

/// Encodes a group metadata value with `version` (0–4).
pub fn encode_group_metadata(v: &GroupMetadataValue, version: i16) -> Result<Vec<u8>, CodecError> {
    if !(0..=4).contains(&version) {
        return Err(CodecError::UnsupportedVersion("group metadata value", version));
    }
    let mut w = Writer::new(version, version >= 4);
    w.string(&v.protocol_type);
    w.i32(v.generation);
    w.nullable_string(v.protocol.as_deref());
    w.nullable_string(v.leader.as_deref());
    if version >= 2 {
        w.i64(v.current_state_timestamp);
    }
    w.array_len(v.members.len());
    for m in &v.members {
        w.string(&m.member_id);
        if version >= 3 {
            w.nullable_string(m.group_instance_id.as_deref());
        }
        w.string(&m.client_id);
        w.string(&m.client_host);
        if version >= 1 {
            w.i32(m.rebalance_timeout);
        }
        w.i32(m.session_timeout);
        w.bytes(&m.subscription);
        w.bytes(&m.assignment);
        w.tagged_fields();
    }
    w.tagged_fields();
    Ok(w.buf)
}

// ---------------------------------------------------------------------------------------------
// Reading.

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    flexible: bool,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or(CodecError::Truncated)?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn i16(&mut self) -> Result<i16, CodecError> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn i32(&mut self) -> Result<i32, CodecError> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn uvarint(&mut self) -> Result<u64, CodecError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.take(1)?[0];
            v |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError::Invalid("varint"))
    }
    /// The length prefix matching [`Writer::len`]; `None` is null.
    fn len(&mut self, wide: bool) -> Result<Option<usize>, CodecError> {
        let n: i64 = if self.flexible {
            self.uvarint()? as i64 - 1
        } else if wide {
            self.i32()? as i64
        } else {
            self.i16()? as i64
        };
        match n {
            -1 => Ok(None),
            n if n < 0 => Err(CodecError::Invalid("negative length")),
            n => Ok(Some(n as usize)),
        }
    }
    fn nullable_string(&mut self) -> Result<Option<String>, CodecError> {
        match self.len(false)? {
            None => Ok(None),
            Some(n) => String::from_utf8(self.take(n)?.to_vec())
                .map(Some)
                .map_err(|_| CodecError::Invalid("UTF-8 string")),
        }
    }
    fn string(&mut self) -> Result<String, CodecError> {
        self.nullable_string()?.ok_or(CodecError::Invalid("null string"))
    }
    fn bytes(&mut self) -> Result<Bytes, CodecError> {
        let n = self.len(true)?.ok_or(CodecError::Invalid("null bytes"))?;
        Ok(Bytes::copy_from_slice(self.take(n)?))
    }
    fn array_len(&mut self) -> Result<usize, CodecError> {
        self.len(true)?.ok_or(CodecError::Invalid("null array"))
    }
    /// Skips a tagged-field section (fields added by newer writers are ignorable).
    fn tagged_fields(&mut self) -> Result<(), CodecError> {
        if self.flexible {
            for _ in 0..self.uvarint()? {
                self.uvarint()?;
                let size = self.uvarint()? as usize;
                self.take(size)?;
            }
        }
        Ok(())
    }
}

/// Decodes a key. Key versions Sluice does not use come back as [`RecordKey::Other`].
pub fn decode_key(buf: &[u8]) -> Result<RecordKey, CodecError> {
    let mut r = Reader { buf, pos: 0, flexible: false };
    let version = r.i16()?;
    Ok(match version {
        0 | 1 => {
            RecordKey::OffsetCommit { group: r.string()?, topic: r.string()?, partition: r.i32()? }
        }
        2 => RecordKey::GroupMetadata { group: r.string()? },
        other => RecordKey::Other(other),
    })
}

fn value_version(buf: &[u8], what: &'static str) -> Result<i16, CodecError> {
    let mut r = Reader { buf, pos: 0, flexible: false };
    let version = r.i16()?;
    if !(0..=4).contains(&version) {
        return Err(CodecError::UnsupportedVersion(what, version));
    }
    Ok(version)
}

/// Decodes an offset commit value of any version (0–4).
pub fn decode_offset_commit(buf: &[u8]) -> Result<OffsetCommitValue, CodecError> {
    let version = value_version(buf, "offset commit value")?;
    let mut r = Reader { buf, pos: 2, flexible: version >= 4 };
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp = r.i64()?;
    let expire_timestamp = if version == 1 { r.i64()? } else { -1 };
    r.tagged_fields()?;
    Ok(OffsetCommitValue { offset, leader_epoch, metadata, commit_timestamp, expire_timestamp })
}

/// Decodes a group metadata value of any version (0–4).
pub fn decode_group_metadata(buf: &[u8]) -> Result<GroupMetadataValue, CodecError> {
    let version = value_version(buf, "group metadata value")?;
    let mut r = Reader { buf, pos: 2, flexible: version >= 4 };
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let count = r.array_len()?;
    // Each member takes at least 20 bytes: a bound that keeps a corrupt count from allocating.
    let mut members = Vec::with_capacity(count.min(buf.len() / 20 + 1));
    for _ in 0..count {
        let member_id = r.string()?;
        let group_instance_id = if version >= 3 { r.nullable_string()? } else { None };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout = if version >= 1 { Some(r.i32()?) } else { None };
        let session_timeout = r.i32()?;
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        r.tagged_fields()?;
        members.push(MemberMetadata {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout: rebalance_timeout.unwrap_or(session_timeout),
            session_timeout,
            subscription,
            assignment,
        });
    }
    r.tagged_fields()?;
    Ok(GroupMetadataValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `int16` length + bytes: a non-flexible string.
    fn s(v: &str) -> Vec<u8> {
        let mut out = (v.len() as i16).to_be_bytes().to_vec();
        out.extend_from_slice(v.as_bytes());
        out
    }

    /// Unsigned varint length + 1 and bytes: a compact (flexible) string.
    fn cs(v: &str) -> Vec<u8> {
        assert!(v.len() < 127);
        let mut out = vec![v.len() as u8 + 1];
        out.extend_from_slice(v.as_bytes());
        out
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn offset_commit_key_v1_matches_kafka_layout() {
        let key = RecordKey::OffsetCommit { group: "g".into(), topic: "t".into(), partition: 5 };
        let want = cat(&[&[0, 1], &s("g"), &s("t"), &[0, 0, 0, 5]]);
        assert_eq!(want, [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 5]);
        assert_eq!(encode_key(&key), want);
        assert_eq!(decode_key(&want).unwrap(), key);
    }

    #[test]
    fn offset_commit_key_v0_decodes_to_the_same_key() {
        let v0 = cat(&[&[0, 0], &s("group-a"), &s("orders"), &[0, 0, 1, 0]]);
        assert_eq!(
            decode_key(&v0).unwrap(),
            RecordKey::OffsetCommit {
                group: "group-a".into(),
                topic: "orders".into(),
                partition: 256
            }
        );
    }

    #[test]
    fn group_metadata_key_v2_matches_kafka_layout() {
        let key = RecordKey::GroupMetadata { group: "my-group".into() };
        let want = cat(&[&[0, 2], &s("my-group")]);
        assert_eq!(encode_key(&key), want);
        assert_eq!(decode_key(&want).unwrap(), key);
    }

    #[test]
    fn unknown_key_versions_are_reported_not_failed() {
        // Key version 3 is a KIP-848 ConsumerGroupMetadataKey in Kafka 4.
        let v3 = cat(&[&[0, 3], &s("g")]);
        assert_eq!(decode_key(&v3).unwrap(), RecordKey::Other(3));
        assert_eq!(decode_key(&[0]), Err(CodecError::Truncated));
        assert_eq!(decode_key(&[0, 1, 0, 5, b'a']), Err(CodecError::Truncated));
    }

    fn commit(expire: i64, epoch: i32) -> OffsetCommitValue {
        OffsetCommitValue {
            offset: 100,
            leader_epoch: epoch,
            metadata: "meta".into(),
            commit_timestamp: 1234,
            expire_timestamp: expire,
        }
    }

    const OFFSET_100: [u8; 8] = [0, 0, 0, 0, 0, 0, 0, 100];
    const TS_1234: [u8; 8] = [0, 0, 0, 0, 0, 0, 0x04, 0xd2];
    const TS_5678: [u8; 8] = [0, 0, 0, 0, 0, 0, 0x16, 0x2e];

    #[test]
    fn offset_commit_value_every_version_matches_kafka_layout() {
        let cases: [(i16, OffsetCommitValue, Vec<u8>); 5] = [
            (0, commit(-1, -1), cat(&[&[0, 0], &OFFSET_100, &s("meta"), &TS_1234])),
            (1, commit(5678, -1), cat(&[&[0, 1], &OFFSET_100, &s("meta"), &TS_1234, &TS_5678])),
            (2, commit(-1, -1), cat(&[&[0, 2], &OFFSET_100, &s("meta"), &TS_1234])),
            (3, commit(-1, 7), cat(&[&[0, 3], &OFFSET_100, &[0, 0, 0, 7], &s("meta"), &TS_1234])),
            (
                4,
                commit(-1, 7),
                cat(&[&[0, 4], &OFFSET_100, &[0, 0, 0, 7], &cs("meta"), &TS_1234, &[0]]),
            ),
        ];
        for (version, value, bytes) in cases {
            assert_eq!(encode_offset_commit(&value, version).unwrap(), bytes, "v{version}");
            assert_eq!(decode_offset_commit(&bytes).unwrap(), value, "v{version}");
        }
        assert!(encode_offset_commit(&commit(-1, -1), 5).is_err());
    }

    #[test]
    fn offset_commit_value_v4_skips_unknown_tagged_fields() {
        // One tagged field (tag 0, 2 bytes) written by a newer Kafka.
        let bytes = cat(&[&[0, 4], &OFFSET_100, &[0xff; 4], &cs(""), &TS_1234, &[1, 0, 2, 9, 9]]);
        let v = decode_offset_commit(&bytes).unwrap();
        assert_eq!((v.offset, v.leader_epoch, v.metadata.as_str()), (100, -1, ""));
        assert!(decode_offset_commit(&bytes[..bytes.len() - 1]).is_err());
        assert_eq!(
            decode_offset_commit(&[0, 9, 0]),
            Err(CodecError::UnsupportedVersion("offset commit value", 9))
        );
    }

    fn group_value(instance: Option<&str>, rebalance_timeout: i32, ts: i64) -> GroupMetadataValue {
        GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 3,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: ts,
            members: vec![MemberMetadata {
                member_id: "m1".into(),
                group_instance_id: instance.map(String::from),
                client_id: "c".into(),
                client_host: "/h".into(),
                rebalance_timeout,
                session_timeout: 10_000,
                subscription: Bytes::from_static(&[1, 2]),
                assignment: Bytes::from_static(&[3]),
            }],
        }
    }

    #[test]
    fn group_metadata_value_every_version_matches_kafka_layout() {
        let head = cat(&[&s("consumer"), &[0, 0, 0, 3], &s("range"), &s("m1")]);
        let session = [0, 0, 0x27, 0x10];
        let rebalance = [0, 0, 0x75, 0x30];
        let subscription_assignment = [0, 0, 0, 2, 1, 2, 0, 0, 0, 1, 3];
        let one = [0, 0, 0, 1];
        let ts = TS_1234;
        let cases: [(i16, GroupMetadataValue, Vec<u8>); 5] = [
            (
                0,
                group_value(None, 10_000, -1),
                cat(&[
                    &[0, 0],
                    &head,
                    &one,
                    &s("m1"),
                    &s("c"),
                    &s("/h"),
                    &session,
                    &subscription_assignment,
                ]),
            ),
            (
                1,
                group_value(None, 30_000, -1),
                cat(&[
                    &[0, 1],
                    &head,
                    &one,
                    &s("m1"),
                    &s("c"),
                    &s("/h"),
                    &rebalance,
                    &session,
                    &subscription_assignment,
                ]),
            ),
            (
                2,
                group_value(None, 30_000, 1234),
                cat(&[
                    &[0, 2],
                    &head,
                    &ts,
                    &one,
                    &s("m1"),
                    &s("c"),
                    &s("/h"),
                    &rebalance,
                    &session,
                    &subscription_assignment,
                ]),
            ),
            (
                3,
                group_value(Some("i1"), 30_000, 1234),
                cat(&[
                    &[0, 3],
                    &head,
                    &ts,
                    &one,
                    &s("m1"),
                    &s("i1"),
                    &s("c"),
                    &s("/h"),
                    &rebalance,
                    &session,
                    &subscription_assignment,
                ]),
            ),
            (
                4,
                group_value(None, 30_000, 1234),
                cat(&[
                    &[0, 4],
                    &cs("consumer"),
                    &[0, 0, 0, 3],
                    &cs("range"),
                    &cs("m1"),
                    &ts,
                    &[2], // one member, compact array
                    &cs("m1"),
                    &[0], // null instance id
                    &cs("c"),
                    &cs("/h"),
                    &rebalance,
                    &session,
                    &[3, 1, 2, 2, 3], // compact bytes
                    &[0],             // member tagged fields
                    &[0],             // value tagged fields
                ]),
            ),
        ];
        for (version, value, bytes) in cases {
            assert_eq!(encode_group_metadata(&value, version).unwrap(), bytes, "v{version}");
            assert_eq!(decode_group_metadata(&bytes).unwrap(), value, "v{version}");
        }
    }

    #[test]
    fn empty_group_metadata_has_null_protocol_and_leader() {
        let value = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: None,
            leader: None,
            current_state_timestamp: 1234,
            members: vec![],
        };
        let want = cat(&[
            &[0, 3],
            &s("consumer"),
            &[0, 0, 0, 4],
            &[0xff, 0xff],
            &[0xff, 0xff],
            &TS_1234,
            &[0, 0, 0, 0],
        ]);
        assert_eq!(encode_group_metadata(&value, 3).unwrap(), want);
        assert_eq!(decode_group_metadata(&want).unwrap(), value);
    }

    #[test]
    fn corrupt_values_are_errors_not_panics() {
        let good = encode_group_metadata(&group_value(Some("i"), 1, 2), 3).unwrap();
        for cut in 0..good.len() {
            assert!(decode_group_metadata(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge_count = encode_group_metadata(&group_value(None, 1, 2), 3).unwrap();
        let at = 2 + 10 + 4 + 7 + 4 + 8;
        huge_count[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_group_metadata(&huge_count).is_err());
    }
}
