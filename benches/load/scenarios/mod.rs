//! The five scenarios, one file each: (a) sends, (b) spread with pgbench,
//! (c) reads, (d) fan-out, (e) payloads.

pub(crate) mod fanout;
pub(crate) mod payloads;
pub(crate) mod reads;
pub(crate) mod sends;
pub(crate) mod spread;
