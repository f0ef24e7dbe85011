//! Pure decisions about running clusters, apart from the I/O that observes and acts: each is a
//! function of what was observed, tested branch by branch.

pub mod roll;
pub mod scale;
pub mod storage;
pub mod topic;
