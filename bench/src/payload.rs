//! Record values: random-looking bytes, generated once, so the load generator spends its time in
//! the client rather than in making payloads.

/// Size of the pre-generated pool that record values are sliced from.
const POOL_BYTES: usize = 1 << 20;

/// A pool of pseudo-random bytes from which every record value is a slice of the same length.
///
/// Values differ from record to record (their start moves through the pool), so a broker or a
/// codec cannot take advantage of identical records; the bytes are incompressible.
#[derive(Debug, Clone)]
pub struct Payload {
    pool: Vec<u8>,
    record_size: usize,
}

impl Payload {
    /// A pool for values of `record_size` bytes.
    pub fn new(record_size: usize) -> Self {
        let mut pool = vec![0u8; POOL_BYTES + record_size];
        // xorshift64*: cheap, and good enough to defeat compression.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for chunk in pool.chunks_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        Self { pool, record_size }
    }

    /// Length of every value.
    pub fn record_size(&self) -> usize {
        self.record_size
    }

    /// The value of record number `seq`.
    pub fn value(&self, seq: u64) -> &[u8] {
        // A prime stride walks the whole pool before repeating a start.
        let start = (seq.wrapping_mul(4099) % POOL_BYTES as u64) as usize;
        &self.pool[start..start + self.record_size]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_the_requested_size_and_differ_between_neighbours() {
        let p = Payload::new(1024);
        for seq in [0, 1, 2, 255, 256, 1_000_000, u64::MAX] {
            assert_eq!(p.value(seq).len(), 1024);
        }
        assert_ne!(p.value(0), p.value(1));
        assert_ne!(p.value(1), p.value(2));
    }

    #[test]
    fn pool_bytes_are_not_trivially_compressible() {
        let p = Payload::new(64 * 1024);
        let v = p.value(7);
        let mut counts = [0usize; 256];
        v.iter().for_each(|b| counts[*b as usize] += 1);
        // Uniform bytes give ~256 of each value in 64 KiB; a constant or a short cycle would not.
        assert!(counts.iter().all(|c| (128..=384).contains(c)), "{counts:?}");
    }
}
